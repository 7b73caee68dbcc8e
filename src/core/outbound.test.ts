import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBlockedAddress, OutboundClient, OutboundError, signPayload } from './outbound.js';

let server: http.Server;
let port = 0;
const hits: string[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    if (req.url === '/redirect') {
      res.writeHead(302, { location: '/target' }).end();
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`echo:${req.method}:${body}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

async function refusal(client: OutboundClient, url: string): Promise<OutboundError> {
  const err = await client.request(url).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OutboundError);
  return err as OutboundError;
}

describe('outbound SSRF guard', () => {
  const client = new OutboundClient();

  it.each([
    'http://127.0.0.1/',
    'http://10.1.2.3/',
    'http://172.16.5.4/',
    'http://192.168.1.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:169.254.169.254]/',
    'http://[fe80::1]/',
    'http://[fd12::1]/',
    'http://0.0.0.0/',
    'http://224.0.0.1/',
    // IPv4-translated (::ffff:0:a.b.c.d) and the other IPv6 spellings of refused IPv4 ranges
    'http://[::ffff:0:7f00:1]/',
    'http://[::ffff:0:127.0.0.1]/',
    'http://[::ffff:0:a9fe:a9fe]/',
    'http://[::ffff:7f00:1]/',
    'http://[::ffff:c000:201]/',
    'http://[::7f00:1]/',
    'http://[2002:7f00:1::1]/',
    'http://[2002:a00:1::]/',
    // documentation ranges (TEST-NET-1 is also what some lab and cloud interfaces use)
    'http://192.0.2.1/',
    'http://198.51.100.7/',
    'http://203.0.113.200/',
    'http://[::ffff:203.0.113.9]/',
    'http://[2001:db8::1]/',
    'http://[64:ff9b:1::a00:1]/',
  ])('refuses %s', async (url) => {
    const err = await refusal(client, url);
    expect(err.kind).toBe('blocked');
    expect(err.transient).toBe(false);
  });

  it('refuses a host name that resolves to loopback (localhost)', async () => {
    const err = await refusal(client, `http://localhost:${port}/`);
    expect(err.kind).toBe('blocked');
    expect(hits).not.toContain('/');
  });

  it('refuses a name whose address is an IPv6 spelling of loopback, and never connects', async () => {
    const c = new OutboundClient({ resolve: async () => [{ address: '::ffff:0:7f00:1', family: 6 }] });
    const err = await refusal(c, `http://rebinding.example:${port}/probe`);
    expect(err.kind).toBe('blocked');
    expect(hits).not.toContain('/probe');
  });

  it('refuses a name when any of its addresses is internal', async () => {
    const c = new OutboundClient({
      resolve: async () => [
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.1', family: 4 },
      ],
    });
    expect((await refusal(c, 'http://mixed.example/')).kind).toBe('blocked');
  });

  it.each(['file:///etc/passwd', 'ftp://example.com/', 'gopher://example.com/', 'not a url'])(
    'refuses the URL %s',
    async (url) => {
      expect((await refusal(client, url)).kind).toBe('invalid_url');
    },
  );

  it('classifies addresses', () => {
    expect(isBlockedAddress('8.8.8.8')).toBe(false);
    expect(isBlockedAddress('2606:4700:4700::1111')).toBe(false);
    expect(isBlockedAddress('::ffff:8.8.8.8')).toBe(false);
    expect(isBlockedAddress('::ffff:a9fe:a9fe')).toBe(true);
    // Translated and 6to4 forms follow the IPv4 rules too: public stays public.
    expect(isBlockedAddress('::ffff:0:808:808')).toBe(false);
    expect(isBlockedAddress('::ffff:0:c0a8:101')).toBe(true);
    expect(isBlockedAddress('2002:808:808::1')).toBe(false);
    expect(isBlockedAddress('2002:c0a8:101::1')).toBe(true);
    expect(isBlockedAddress('192.0.2.255')).toBe(true);
    expect(isBlockedAddress('192.0.3.1')).toBe(false);
    expect(isBlockedAddress('2001:db8:ffff::1')).toBe(true);
    expect(isBlockedAddress('2001:db9::1')).toBe(false);
    expect(isBlockedAddress('::')).toBe(true);
    expect(isBlockedAddress('ff02::1')).toBe(true);
  });

  it('reaches 127.0.0.1 when allow-listed, and pins the connection to the checked address', async () => {
    const allowed = new OutboundClient({ allow: ['127.0.0.1'] });
    const res = await allowed.request(`http://127.0.0.1:${port}/x`, { method: 'POST', body: 'hi' });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('echo:POST:hi');

    // The name resolves (once) to the allow-listed address; the connection goes there.
    const named = new OutboundClient({
      allow: ['127.0.0.0/8'],
      resolve: async () => [{ address: '127.0.0.1', family: 4 }],
    });
    const viaName = await named.request(`http://hooks.example.test:${port}/named`);
    expect(viaName.body.toString()).toBe('echo:GET:');
    expect(hits).toContain('/named');
  });

  it('does not follow redirects', async () => {
    const allowed = new OutboundClient({ allow: ['127.0.0.1'] });
    const before = hits.filter((h) => h === '/target').length;
    const res = await allowed.request(`http://127.0.0.1:${port}/redirect`);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/target');
    expect(hits.filter((h) => h === '/target').length).toBe(before);
  });

  it('times out', async () => {
    const silent = http.createServer(() => {
      // never answers
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const p = (silent.address() as AddressInfo).port;
    const c = new OutboundClient({ allow: ['127.0.0.1'], timeoutMs: 200 });
    const err = await refusal(c, `http://127.0.0.1:${p}/`);
    expect(err.kind).toBe('timeout');
    expect(err.transient).toBe(true);
    silent.closeAllConnections();
    await new Promise((r) => silent.close(r));
  });

  it('signs payloads with HMAC-SHA256', () => {
    const body = '{"a":1}';
    const expected = createHmac('sha256', 'k').update(body).digest('hex');
    expect(signPayload('k', body)).toBe(`sha256=${expected}`);
  });
});
