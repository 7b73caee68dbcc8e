import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';

/** One raw HTTP/1.1 exchange: what a client that does not go through fetch's URL parser sends. */
function rawRequest(baseUrl: string, request: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = data.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, body: rest.join('\r\n\r\n') });
    });
    socket.write(request, 'latin1');
  });
}

function expectStableError(text: string, what: string): { code: string; message: string } {
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(Object.keys(body), what).toEqual(['error']);
  const error = body.error as { code: string; message: string; details: unknown };
  expect(typeof error.code, what).toBe('string');
  expect(typeof error.message, what).toBe('string');
  expect(Array.isArray(error.details), what).toBe(true);
  return error;
}

describe.skipIf(servicesMissing)('cookie-authenticated mutations need a same-origin request', () => {
  let t: TestPlatform;
  let cookie: string;
  const tokenCount = async () =>
    Number(
      (
        await t.platform.drivers.db.db
          .selectFrom('api_tokens')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('user_id', '=', t.adminId)
          .executeTakeFirstOrThrow()
      ).n,
    );

  beforeAll(async () => {
    t = await createTestPlatform();
    const login = await t.request('POST', '/api/auth/login', {
      body: { name: 'admin', password: ADMIN_PASSWORD },
    });
    expect(login.status).toBe(200);
    cookie = String(login.headers['set-cookie']).split(';')[0]!;
  });
  afterAll(() => t?.close());

  it.each([
    ['a foreign Origin', { origin: 'https://evil.example' }],
    ['Origin: null (sandboxed frame)', { origin: 'null' }],
    ['a look-alike Origin', { origin: 'http://localhost:8080.evil.example' }],
    ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
    ['Sec-Fetch-Site: same-site', { 'sec-fetch-site': 'same-site' }],
    ['neither Origin nor Sec-Fetch-Site', {}],
  ])('refuses a token creation with %s, and creates nothing', async (_what, headers) => {
    const before = await tokenCount();
    const auditBefore = await t.auditCount();
    const res = await t.request('POST', '/api/tokens', {
      headers: { cookie, ...headers },
      body: { name: 'csrf' },
      noAuditCheck: true,
    });
    expect(res.status).toBe(403);
    expect(expectStableError(res.text, 'csrf').code).toBe('forbidden');
    expect(res.text).not.toContain('plat_api_');
    expect(await tokenCount()).toBe(before);
    expect(await t.auditCount()).toBe(auditBefore);
  });

  it('refuses a body-less logout from a foreign Origin: the session still works', async () => {
    const res = await t.request('POST', '/api/auth/logout', {
      headers: { cookie, origin: 'https://evil.example' },
      noAuditCheck: true,
    });
    expect(res.status).toBe(403);
    expect((await t.request('GET', '/api/auth/me', { headers: { cookie } })).status).toBe(200);
  });

  it('accepts the platform origin, Sec-Fetch-Site: same-origin, and reads from anywhere', async () => {
    const same = await t.request('POST', '/api/tokens', {
      headers: { cookie, origin: t.config.public_url },
      body: { name: 'from-the-ui' },
    });
    expect(same.status).toBe(201);
    const fetchMeta = await t.request('POST', '/api/tokens', {
      headers: { cookie, 'sec-fetch-site': 'same-origin' },
      body: { name: 'from-the-ui-2' },
    });
    expect(fetchMeta.status).toBe(201);
    const read = await t.request('GET', '/api/tokens', {
      headers: { cookie, origin: 'https://evil.example' },
    });
    expect(read.status).toBe(200);
  });

  it('does not affect token-authenticated requests', async () => {
    const res = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      headers: { origin: 'https://evil.example' },
      body: { name: 'cli' },
    });
    expect(res.status).toBe(201);
  });
});

describe.skipIf(servicesMissing)('framework errors answer with the stable error body', () => {
  let t: TestPlatform;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
  });
  afterAll(() => t?.close());

  it.each([
    '/api/projects/%FF',
    '/api/projects/%E0%A4%A',
    '/api/%C0%AF',
    '/api/projects/%ZZ/tree',
    '/admin/x.git/info/refs%FF',
  ])('a bad path encoding (%s) is a 400 with the stable body', async (path) => {
    const res = await rawRequest(t.baseUrl, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(expectStableError(res.body, path).code).toBe('bad_request');
  });

  it.each([
    ['malformed request line', 'GARBAGE\r\n\r\n'],
    ['a header without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n'],
    ['a bad Content-Length', 'POST /api/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
  ])('%s is a 400 with the stable body', async (_what, request) => {
    const res = await rawRequest(t.baseUrl, request);
    expect(res.status).toBe(400);
    expect(expectStableError(res.body, request).code).toBe('bad_request');
  });

  it.each([
    ['invalid JSON', 'application/json', '{"name":', 400],
    ['an empty JSON body', 'application/json', '', 400],
    ['a JSON dialect that is not JSON', 'application/merge-patch+json', '{nope', 400],
    ['an unsupported content type', 'text/xml', '<name>x</name>', 415],
  ])('%s is a 4xx with the stable body, and nothing is created', async (_what, type, body, status) => {
    const before = await t.auditCount();
    const res = await fetch(`${t.baseUrl}/api/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': type },
      body,
    });
    const text = await res.text();
    expect(res.status, text).toBe(status);
    expectStableError(text, type);
    expect(await t.auditCount()).toBe(before);
  });
});
