import { describe, expect, it } from 'vitest';
import { attachmentDisposition, DOWNLOAD_CSP, downloadHeaders, safeDownloadType } from './download.js';

describe('download headers', () => {
  it.each([
    [undefined, 'application/octet-stream'],
    ['text/html', 'application/octet-stream'],
    ['text/html; charset=utf-8', 'application/octet-stream'],
    ['image/svg+xml', 'application/octet-stream'],
    ['application/javascript', 'application/octet-stream'],
    ['application/xhtml+xml', 'application/octet-stream'],
    ['text/xml', 'application/octet-stream'],
    ['application/pdf', 'application/octet-stream'],
    ['text/plain', 'application/octet-stream'],
    ['text/plain; charset=utf-7', 'application/octet-stream'],
    ['image/png; x=1', 'application/octet-stream'],
    ['image/png', 'image/png'],
    ['IMAGE/JPEG', 'image/jpeg'],
    ['image/webp', 'image/webp'],
    ['text/plain; charset=utf-8', 'text/plain; charset=utf-8'],
    ['text/plain;charset="UTF-8"', 'text/plain; charset=utf-8'],
  ])('serves %s as %s', (given, served) => {
    expect(safeDownloadType(given)).toBe(served);
  });

  it('is always an attachment, never sniffed, sandboxed', () => {
    expect(downloadHeaders({ contentType: 'text/html', filename: 'lfs/p/ab/cd/x.html' })).toEqual({
      'content-type': 'application/octet-stream',
      'content-disposition': 'attachment; filename="x.html"; filename*=UTF-8\'\'x.html',
      'x-content-type-options': 'nosniff',
      'content-security-policy': DOWNLOAD_CSP,
    });
    expect(DOWNLOAD_CSP).toBe("sandbox; default-src 'none'");
    expect(downloadHeaders()['content-disposition']).toBe('attachment');
  });

  it('cannot be broken out of by a file name', () => {
    const d = attachmentDisposition('a"b\\c\r\nSet-Cookie: x=1;é.txt');
    expect(d).not.toMatch(/[\r\n]/);
    expect(d.split('"')).toHaveLength(3);
    expect(d).toContain("filename*=UTF-8''a%22b%5Cc%0D%0ASet-Cookie%3A%20x%3D1%3B%C3%A9.txt");
  });
});
