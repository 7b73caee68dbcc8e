import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';

function sessionCookie(setCookie: unknown): string {
  const header = Array.isArray(setCookie) ? setCookie[0] : String(setCookie);
  return header.split(';')[0]!;
}

describe.skipIf(servicesMissing)('password login and sessions', () => {
  let t: TestPlatform;
  let bob: { id: string; token: string; password: string };
  beforeAll(async () => {
    t = await createTestPlatform();
    bob = await t.createUser('bob', ['developer']);
  });
  afterAll(() => t?.close());

  it('login sets an HttpOnly SameSite=Strict cookie that authenticates /api/auth/me', async () => {
    const login = await t.request('POST', '/api/auth/login', {
      body: { name: 'bob', password: bob.password },
    });
    expect(login.status).toBe(200);
    expect(login.body.user.name).toBe('bob');
    expect(login.body.user).not.toHaveProperty('password_hash');
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toMatch(/^platform_session=plat_sess_/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/');
    const me = await t.request('GET', '/api/auth/me', { cookie: sessionCookie(login.headers['set-cookie']) });
    expect(me.status).toBe(200);
    expect(me.body.user.name).toBe('bob');
    expect(me.body.roles).toEqual([{ name: 'developer', project_id: null }]);
    expect(me.body.permissions).toEqual([
      'project:read',
      'project:write',
      'agent:run',
      'deploy:read',
      'observe:read',
      'secret:read',
    ]);
    expect(me.body.auth.method).toBe('session');
  });

  it('stores only the SHA-256 of the session token', async () => {
    const login = await t.request('POST', '/api/auth/login', {
      body: { name: 'bob', password: bob.password },
    });
    const raw = sessionCookie(login.headers['set-cookie']).split('=')[1]!;
    const rows = await t.platform.drivers.db.db.selectFrom('auth_sessions').select('token_hash').execute();
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.some((r) => r.token_hash === raw)).toBe(false);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.token_hash))).toBe(true);
  });

  it('logout deletes the session: the cookie no longer works', async () => {
    const login = await t.request('POST', '/api/auth/login', {
      body: { name: 'bob', password: bob.password },
    });
    const cookie = sessionCookie(login.headers['set-cookie']);
    expect((await t.request('POST', '/api/auth/logout', { cookie })).status).toBe(204);
    const me = await t.request('GET', '/api/auth/me', { cookie });
    expect(me.status).toBe(401);
    expect(me.body.error.code).toBe('unauthorized');
  });

  it('protected endpoints answer 401 without credentials', async () => {
    const res = await t.request('GET', '/api/auth/me');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String), details: [] } });
  });

  it('wrong password, unknown user, inactive user and agent user all get the same 401 body', async () => {
    const inactive = await t.createUser('carol');
    expect((await t.request('DELETE', `/api/users/${inactive.id}`, { token: t.adminToken })).status).toBe(
      204,
    );
    const agent = await t.createUser('robot', [], { userType: 'agent' });
    const attempts = [
      { name: 'bob', password: 'wrong-password' },
      { name: 'nobody-here', password: 'whatever-password' },
      { name: 'carol', password: inactive.password },
      { name: 'robot', password: agent.password },
    ];
    const bodies = [];
    for (const body of attempts) {
      const res = await t.request('POST', '/api/auth/login', { body });
      expect(res.status).toBe(401);
      expect(res.headers['set-cookie']).toBeUndefined();
      bodies.push(res.body);
    }
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    expect(bodies[0]).toEqual({
      error: {
        code: 'unauthorized',
        reason: 'auth.invalid_credentials',
        message: 'invalid name or password',
        details: [],
      },
    });
  });

  it('failed logins are audited without the password', async () => {
    await t.request('POST', '/api/auth/login', { body: { name: 'bob', password: 'secret-guess-123' } });
    const rows = await t.platform.drivers.db.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'auth.login_failed')
      .execute();
    expect(rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(rows)).not.toContain('secret-guess-123');
  });

  it('login time of an unknown user is within noise of a known user with a wrong password', async () => {
    const sample = async (name: string) => {
      const start = performance.now();
      const res = await t.request('POST', '/api/auth/login', {
        body: { name, password: 'not-the-password' },
      });
      expect(res.status).toBe(401);
      return performance.now() - start;
    };
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 6; i++) {
      known.push(await sample('bob'));
      unknown.push(await sample(`ghost-${i}`));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ratio = median(unknown) / median(known);
    // Both paths run one argon2id verification; without the dummy hash the unknown path is ~100× faster.
    expect(ratio).toBeGreaterThan(0.4);
    expect(ratio).toBeLessThan(2.5);
  });
});

describe.skipIf(servicesMissing)('login rate limits', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform({
      config: { PLATFORM_LOGIN_RATE_LIMIT: '3', PLATFORM_LOGIN_RATE_WINDOW_SECONDS: '120' },
    });
  });
  afterAll(() => t?.close());

  it('answers 429 with Retry-After once a name has failed too often, even with the right password', async () => {
    for (let i = 0; i < 3; i++) {
      expect(
        (await t.request('POST', '/api/auth/login', { body: { name: 'admin', password: 'wrong' } })).status,
      ).toBe(401);
    }
    const limited = await t.request('POST', '/api/auth/login', {
      body: { name: 'admin', password: ADMIN_PASSWORD },
    });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(limited.body.error.reason).toBe('auth.rate_limited');
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(120);
  });

  it('limits repeated invalid bearer tokens per client', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await t.request('GET', '/api/auth/me', { token: `plat_api_bogus${i}` })).status).toBe(401);
    }
    const limited = await t.request('GET', '/api/auth/me', { token: 'plat_api_bogus-again' });
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBeDefined();
  });
});
