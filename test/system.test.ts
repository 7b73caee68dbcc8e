import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValkeyCache } from '../src/store/cache/index.js';
import { type Drivers, FsObjectStore } from '../src/store/index.js';
import { VERSION } from '../src/version.js';
import {
  ADMIN_PASSWORD,
  type ApiResponse,
  createTestPlatform,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown>[] };
}

/** The stable error body, and nothing that looks like a stack trace. */
function expectErrorBody(res: ApiResponse, status: number, code: string): ErrorBody {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.body as ErrorBody;
  expect(Object.keys(body)).toEqual(['error']);
  // `reason` is there when a declared refusal reason applies (errors.ts).
  expect(
    Object.keys(body.error)
      .filter((k) => k !== 'reason')
      .sort(),
  ).toEqual(['code', 'details', 'message']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(Array.isArray(body.error.details)).toBe(true);
  expect(res.text).not.toMatch(/\bat .+\.(js|ts):\d+/);
  return body;
}

/** Temporarily swaps a driver of a running platform (readyz reads `platform.drivers` on each call). */
async function withDriver<K extends keyof Drivers>(
  t: TestPlatform,
  name: K,
  replacement: Drivers[K],
  fn: () => Promise<void>,
): Promise<void> {
  const original = t.platform.drivers[name];
  t.platform.drivers[name] = replacement;
  try {
    await fn();
  } finally {
    t.platform.drivers[name] = original;
  }
}

/** A filesystem object store whose root lies below a regular file: every access fails with ENOTDIR. */
function brokenObjectStore(): FsObjectStore {
  const file = path.join(tmpdir(), `platform-not-a-dir-${process.pid}-${Date.now()}`);
  writeFileSync(file, 'not a directory');
  return new FsObjectStore({
    root: path.join(file, 'objects'),
    publicUrl: 'http://localhost',
    signingKey: Buffer.alloc(32, 1),
  });
}

/** A Valkey cache pointed at a port nothing listens on (a real, unreachable server). */
const unreachableCache = () => new ValkeyCache('redis://127.0.0.1:1', { keyPrefix: 'unreachable:' });

describe.skipIf(servicesMissing)('system routes', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(() => t?.close());

  describe('health and readiness', () => {
    it('GET /healthz answers 200 with the version', async () => {
      const res = await t.request('GET', '/healthz');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'ok', version: VERSION });
    });

    it('GET /readyz answers 200 listing every dependency as ok', async () => {
      const res = await t.request<{ status: string; checks: { name: string; ok: boolean; ms: number }[] }>(
        'GET',
        '/readyz',
      );
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body.status).toBe('ready');
      expect(res.body.checks.map((c) => c.name).sort()).toEqual([
        'cache',
        'database',
        'object_store',
        'pubsub',
      ]);
      for (const check of res.body.checks) {
        expect(check.ok).toBe(true);
        expect(typeof check.ms).toBe('number');
        expect(check.ms).toBeGreaterThanOrEqual(0);
      }
    });

    it('GET /readyz answers 503 naming the object store when it is unusable', async () => {
      await withDriver(t, 'objects', brokenObjectStore(), async () => {
        const res = await t.request('GET', '/readyz');
        const body = expectErrorBody(res, 503, 'unavailable');
        expect(body.error.message).toContain('object_store');
        expect(body.error.details).toHaveLength(1);
        expect(body.error.details[0]!.dependency).toBe('object_store');
        expect(body.error.details[0]!.message).toMatch(/ENOTDIR|not a directory/i);
      });
    });

    it('GET /readyz answers 503 naming the cache when its server is unreachable', async () => {
      const cache = unreachableCache();
      try {
        await withDriver(t, 'cache', cache, async () => {
          const res = await t.request('GET', '/readyz');
          const body = expectErrorBody(res, 503, 'unavailable');
          expect(body.error.message).toContain('cache');
          expect(body.error.details.map((d) => d.dependency)).toEqual(['cache']);
        });
      } finally {
        await cache.close();
      }
    });

    it('GET /readyz names every failing dependency at once', async () => {
      const cache = unreachableCache();
      try {
        await withDriver(t, 'cache', cache, () =>
          withDriver(t, 'objects', brokenObjectStore(), async () => {
            const res = await t.request('GET', '/readyz');
            const body = expectErrorBody(res, 503, 'unavailable');
            expect(body.error.details.map((d) => d.dependency).sort()).toEqual(['cache', 'object_store']);
            expect(body.error.message).toContain('cache');
            expect(body.error.message).toContain('object_store');
          }),
        );
      } finally {
        await cache.close();
      }
      expect((await t.request('GET', '/readyz')).status).toBe(200);
    });
  });

  describe('metrics', () => {
    it('GET /metrics is Prometheus text counting the requests served', async () => {
      await t.request('GET', '/healthz');
      await t.request('GET', '/healthz');
      const res = await t.request('GET', '/metrics');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(res.text).toContain('# TYPE platform_http_requests_total counter');
      const line = res.text
        .split('\n')
        .find((l) =>
          l.startsWith('platform_http_requests_total{method="GET",route="/healthz",status="200"}'),
        );
      expect(line, 'a counter line for GET /healthz 200').toBeDefined();
      expect(Number(line!.split(' ').pop())).toBeGreaterThanOrEqual(2);
      expect(res.text).toContain('# TYPE platform_http_request_duration_seconds histogram');
      expect(res.text).toMatch(/^platform_db_pool_connections\{state="total"\} \d+$/m);
      expect(res.text).toContain('platform_process_');
    });

    it('counts error statuses under their route', async () => {
      await t.request('GET', '/api/auth/me');
      const res = await t.request('GET', '/metrics');
      expect(res.text).toMatch(
        /^platform_http_requests_total\{method="GET",route="\/api\/auth\/me",status="401"\} [1-9]/m,
      );
    });
  });

  describe('API description', () => {
    it('GET /api/openapi.json is OpenAPI 3.1 with an operation for every registered route', async () => {
      const res = await t.request<{
        openapi: string;
        info: { title: string; version: string };
        paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>;
        components: { schemas: Record<string, unknown> };
      }>('GET', '/api/openapi.json');
      expect(res.status).toBe(200);
      expect(res.body.openapi).toBe('3.1.0');
      expect(res.body.info.version).toBe(VERSION);
      expect(res.body.components.schemas.Error).toBeDefined();
      const routes = t.platform.registry.routes;
      expect(routes.length).toBeGreaterThan(10);
      const operationIds = new Set<string>();
      for (const r of routes) {
        const p = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{key}');
        const op = res.body.paths[p]?.[r.method.toLowerCase()];
        expect(op, `${r.method} ${r.url} is documented`).toBeDefined();
        expect(op!.responses['4XX'], `${r.method} ${r.url} documents errors`).toBeDefined();
        operationIds.add(op!.operationId);
      }
      expect(operationIds.size, 'operationIds are unique').toBe(routes.length);
      const documented = Object.values(res.body.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
      expect(documented).toBe(routes.length);
    });

    it('documents path parameters and request bodies', async () => {
      const res = await t.request('GET', '/api/openapi.json');
      const op = res.body.paths['/api/users/{id}'].patch;
      expect(op.parameters).toContainEqual(
        expect.objectContaining({ name: 'id', in: 'path', required: true }),
      );
      expect(op.requestBody.content['application/json'].schema.type).toBe('object');
    });

    it('GET /api/docs renders the document with Swagger UI served from the package (no CDN, no inline script)', async () => {
      const res = await t.request('GET', '/api/docs');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toMatch(/^<!doctype html>/);
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      const scripts = [...res.text.matchAll(/<script([^>]*)>([^<]*)<\/script>/g)];
      expect(scripts.length).toBeGreaterThan(0);
      for (const [, attrs, inline] of scripts) {
        expect((inline ?? '').trim(), 'no inline script (the CSP forbids it)').toBe('');
        expect(attrs).toMatch(/src="\/api\/docs\/assets\//);
      }
      for (const src of [...res.text.matchAll(/(?:src|href)="(\/api\/docs\/assets\/[^"]+)"/g)].map(
        (m) => m[1]!,
      )) {
        const asset = await t.request('GET', src);
        expect(asset.status, src).toBe(200);
        expect(asset.text.length, src).toBeGreaterThan(/swagger-ui[^/]*\.(js|css)$/.test(src) ? 10_000 : 50);
      }
      const init = await t.request('GET', '/api/docs/assets/init.js');
      expect(init.text).toContain("url: '/api/openapi.json'");
      expect((await t.request('GET', '/api/docs/assets/package.json')).status).toBe(404);
    });
  });

  describe('headers', () => {
    const expectSecurityHeaders = (res: ApiResponse) => {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['referrer-policy']).toBe('no-referrer');
    };

    it('every response carries the security headers: success, 404, 401, 400', async () => {
      expectSecurityHeaders(await t.request('GET', '/healthz'));
      // Outside /api/ a GET answers the web UI's page (src/web's fallback): the 404 is an API path.
      const missing = await t.request('GET', '/api/no/such/route');
      expect(missing.status).toBe(404);
      expectSecurityHeaders(missing);
      // The web UI's page (or its "not built" page) carries them too.
      expectSecurityHeaders(await t.request('GET', '/projects'));
      expectSecurityHeaders(await t.request('GET', '/api/auth/me'));
      expectSecurityHeaders(
        await t.request('POST', '/api/auth/login', {
          body: '{',
          headers: { 'content-type': 'application/json' },
        }),
      );
    });

    it('answers with a generated UUID request id when none is sent', async () => {
      const a = await t.request('GET', '/healthz');
      const b = await t.request('GET', '/healthz');
      expect(a.headers['x-request-id']).toMatch(UUID);
      expect(b.headers['x-request-id']).toMatch(UUID);
      expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    });

    it('echoes a valid incoming x-request-id, also on errors', async () => {
      const ok = await t.request('GET', '/healthz', { headers: { 'x-request-id': 'trace-abc_1.2' } });
      expect(ok.headers['x-request-id']).toBe('trace-abc_1.2');
      const missing = await t.request('GET', '/api/nope', { headers: { 'x-request-id': 'trace-404' } });
      expect(missing.status).toBe(404);
      expect(missing.headers['x-request-id']).toBe('trace-404');
    });

    it('replaces an invalid incoming x-request-id with a generated one', async () => {
      for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', '<script>']) {
        const res = await t.request('GET', '/healthz', { headers: { 'x-request-id': bad } });
        expect(res.headers['x-request-id'], bad).toMatch(UUID);
      }
    });
  });

  describe('error bodies', () => {
    it('an unknown route answers 404 with the stable body', async () => {
      const res = await t.request('GET', '/api/no-such-thing?x=1');
      expectErrorBody(res, 404, 'not_found');
      expect(res.body).toEqual({
        error: { code: 'not_found', message: 'route GET /api/no-such-thing not found', details: [] },
      });
    });

    it('an unknown route answers 404 for every method, also with a body', async () => {
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        const res = await t.request(method, '/api/no-such-thing', { body: { a: 1 }, token: t.adminToken });
        expectErrorBody(res, 404, 'not_found');
      }
    });

    it('malformed JSON answers 400 with the stable body', async () => {
      const res = await t.request('POST', '/api/auth/login', {
        body: '{"name": "admin", "password": ',
        headers: { 'content-type': 'application/json' },
      });
      const body = expectErrorBody(res, 400, 'bad_request');
      expect(body.error.message).toMatch(/json/i);
    });

    it('an empty JSON body answers 400 with the stable body', async () => {
      const res = await t.request('POST', '/api/tokens', {
        token: t.adminToken,
        body: '',
        headers: { 'content-type': 'application/json' },
      });
      expectErrorBody(res, 400, 'bad_request');
    });

    it('a schema violation answers 400 naming the field', async () => {
      const res = await t.request('POST', '/api/auth/login', { body: { name: 'admin' } });
      const body = expectErrorBody(res, 400, 'bad_request');
      expect(body.error.details).toContainEqual(expect.objectContaining({ path: 'body.password' }));
    });

    it('a bad bearer token answers 401 with the stable body', async () => {
      const res = await t.request('GET', '/api/auth/me', { token: 'plat_api_not-a-real-token' });
      expectErrorBody(res, 401, 'unauthorized');
      expect(res.body.error.details).toEqual([]);
    });

    it('no credentials on a signed-in route answers 401 with the stable body', async () => {
      expectErrorBody(await t.request('GET', '/api/auth/me'), 401, 'unauthorized');
    });

    it('an unsupported Authorization scheme answers 401 with the stable body', async () => {
      const res = await t.request('GET', '/api/auth/me', { headers: { authorization: 'Digest abc' } });
      expectErrorBody(res, 401, 'unauthorized');
    });
  });

  describe('logs', () => {
    const parsed = () =>
      t.logLines.map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return { raw: l };
        }
      });

    it('request log lines carry the request id', async () => {
      await t.request('GET', '/api/auth/me', {
        token: t.adminToken,
        headers: { 'x-request-id': 'log-line-check-1' },
      });
      const lines = parsed().filter((l) => l.reqId === 'log-line-check-1');
      const messages = lines.map((l) => l.msg);
      expect(messages).toContain('incoming request');
      expect(messages).toContain('request completed');
    });

    it('request log lines of a signed-in request carry the user id', async () => {
      await t.request('GET', '/api/auth/me', {
        token: t.adminToken,
        headers: { 'x-request-id': 'log-line-check-2' },
      });
      const completed = parsed().find((l) => l.reqId === 'log-line-check-2' && l.msg === 'request completed');
      expect(completed?.user_id).toBe(t.adminId);
    });

    it('rejected requests are logged with the error code and the request id', async () => {
      await t.request('GET', '/api/auth/me', { headers: { 'x-request-id': 'log-line-check-3' } });
      const rejected = parsed().find((l) => l.reqId === 'log-line-check-3' && l.msg === 'request rejected');
      expect(rejected?.code).toBe('unauthorized');
    });

    it('no log line contains a bearer token or a password', async () => {
      const login = await t.request('POST', '/api/auth/login', {
        body: { name: t.config.admin_name, password: ADMIN_PASSWORD },
      });
      expect(login.status).toBe(200);
      const cookie = String(login.headers['set-cookie']).split(';')[0]!;
      const sessionToken = cookie.split('=')[1]!;
      expect(sessionToken.length).toBeGreaterThan(20);
      const wrong = await t.request('POST', '/api/auth/login', {
        body: { name: t.config.admin_name, password: 'wrong-password-never-logged' },
      });
      expect(wrong.status).toBe(401);
      const created = await t.request('POST', '/api/tokens', {
        token: t.adminToken,
        body: { name: 'logcheck' },
      });
      expect(created.status).toBe(201);
      const newToken = created.body.token as string;
      expect((await t.request('GET', '/api/auth/me', { token: newToken })).status).toBe(200);
      expect((await t.request('GET', '/api/users', { token: t.adminToken })).status).toBe(200);
      expect((await t.request('GET', '/api/auth/me', { cookie })).status).toBe(200);
      const basic = Buffer.from(`${t.config.admin_name}:${ADMIN_PASSWORD}`).toString('base64');
      await t.request('GET', '/api/auth/me', { headers: { authorization: `Basic ${basic}` } });

      expect(t.logLines.length).toBeGreaterThan(10);
      const all = t.logLines.join('\n');
      for (const secret of [
        t.adminToken,
        newToken,
        sessionToken,
        ADMIN_PASSWORD,
        'wrong-password-never-logged',
        basic,
      ]) {
        expect(all.includes(secret), `a log line contains ${secret.slice(0, 12)}…`).toBe(false);
      }
    });
  });
});

describe.skipIf(servicesMissing)('system: body limit', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform({ config: { PLATFORM_BODY_LIMIT_BYTES: '2048' } });
  });
  afterAll(() => t?.close());

  it('a body over the limit answers 413 payload_too_large', async () => {
    const res = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: { name: 'x'.repeat(4096) },
    });
    const body = expectErrorBody(res, 413, 'payload_too_large');
    expect(body.error.message).toBe('request body is too large');
  });

  it('a body over the limit answers 413 before authentication matters', async () => {
    const res = await t.request('POST', '/api/auth/login', {
      body: { name: 'admin', password: 'p'.repeat(3000) },
    });
    expectErrorBody(res, 413, 'payload_too_large');
  });

  it('a large body of a non-JSON content type on a JSON route is refused with a 4xx', async () => {
    // Non-JSON bodies reach routes as unread streams (uploads); a JSON route rejects them without buffering.
    const res = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: 'z'.repeat(3000),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect([400, 413, 415]).toContain(res.status);
    expectErrorBody(res, res.status, res.body.error.code);
  });

  it('a body just under the limit is read and validated', async () => {
    const res = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: { name: 'n', pad: 'y'.repeat(1500) },
    });
    expect(res.status, res.text).toBe(201);
  });

  it('a closed database: requests answer 500 internal (logged with the request id), readyz 503 naming it', async () => {
    // Close the database under the running app: the next query fails in a way no handler expects.
    await t.platform.drivers.db.close();
    const res = await t.request('GET', '/api/users', {
      token: t.adminToken,
      headers: { 'x-request-id': 'broken-db-1' },
    });
    const body = expectErrorBody(res, 500, 'internal');
    expect(body.error.details).toEqual([]);
    expect(body.error.message).not.toMatch(/destroyed|closed|pool/i);
    const logged = t.logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.reqId === 'broken-db-1' && l.msg === 'request failed');
    expect(logged?.level).toBe(50);
    expect(logged?.err).toBeDefined();

    const ready = await t.request('GET', '/readyz');
    const readyBody = expectErrorBody(ready, 503, 'unavailable');
    // Embedded stores: pub/sub runs over the database (LISTEN/NOTIFY), so it is down with it.
    expect(readyBody.error.details.map((d) => d.dependency)).toEqual(
      storeMode === 'embedded' ? ['database', 'pubsub'] : ['database'],
    );
    expect(readyBody.error.message).toContain('database');
  });
});
