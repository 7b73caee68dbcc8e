/**
 * The response headers of every download of stored bytes (LFS objects, artifacts, repository files
 * through `/raw`, anything served from a presigned URL). Those bytes come from users, and they are
 * served from the platform's own origin: rendered as HTML or SVG they would run script with the
 * signed-in user's cookies. So a download is always an attachment, never sniffed, sandboxed if a
 * browser renders it anyway, and typed `application/octet-stream` unless the type is on a short list
 * of types no browser executes. The type an uploader sent is never echoed: callers pass the type the
 * platform itself recorded, and even that only passes through this list.
 */

export const OCTET_STREAM = 'application/octet-stream';
/** A sandboxed document with no origin that may load nothing, should a browser render it at all. */
export const DOWNLOAD_CSP = "sandbox; default-src 'none'";

/** Raster images only: SVG is a document that runs script. */
const SAFE_IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']);
/** text/plain is only safe with a charset: without one, old browsers sniff UTF-7 and friends. */
const SAFE_CHARSETS = new Set(['utf-8', 'us-ascii', 'iso-8859-1']);

/** The Content-Type a download is served with: the given type if it is on the safe list, else octet-stream. */
export function safeDownloadType(contentType: string | undefined | null): string {
  if (!contentType) return OCTET_STREAM;
  const [essence = '', ...params] = contentType.split(';').map((p) => p.trim().toLowerCase());
  if (SAFE_IMAGE_TYPES.has(essence) && params.length === 0) return essence;
  if (essence === 'text/plain' && params.length === 1) {
    const m = /^charset="?([a-z0-9-]+)"?$/.exec(params[0]!);
    if (m && SAFE_CHARSETS.has(m[1]!)) return `text/plain; charset=${m[1]}`;
  }
  return OCTET_STREAM;
}

/**
 * `attachment`, with the file name when there is one: an ASCII fallback (quotes, backslashes and
 * control characters replaced, so the header cannot be split or broken out of) and the exact name
 * in RFC 5987 form.
 */
export function attachmentDisposition(filename?: string | null): string {
  const name = (filename ?? '').split('/').pop() ?? '';
  if (!name) return 'attachment';
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

export type DownloadHeaders = {
  'content-type': string;
  'content-disposition': string;
  'x-content-type-options': 'nosniff';
  'content-security-policy': string;
};

/** The one place that decides a download's headers (see the module comment). */
export function downloadHeaders(
  options: { contentType?: string | null; filename?: string | null } = {},
): DownloadHeaders {
  return {
    'content-type': safeDownloadType(options.contentType),
    'content-disposition': attachmentDisposition(options.filename),
    'x-content-type-options': 'nosniff',
    'content-security-policy': DOWNLOAD_CSP,
  };
}
