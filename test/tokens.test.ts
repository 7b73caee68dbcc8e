import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  eventually,
  insertProject,
  servicesMissing,
  type TestPlatform,
} from './helpers/app.js';

describe.skipIf(servicesMissing)('API tokens', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string; password: string };
  let projectA: string;
  let projectB: string;
  beforeAll(async () => {
    t = await createTestPlatform();
    dev = await t.createUser('dana', ['developer']);
    projectA = await insertProject(t, { name: 'alpha' });
    projectB = await insertProject(t, { name: 'beta' });
  });
  afterAll(() => t?.close());

  it('creates a prefixed token shown once, stores only its hash, and it works as bearer', async () => {
    const created = await t.request('POST', '/api/tokens', { token: dev.token, body: { name: 'ci' } });
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^plat_api_[A-Za-z0-9_-]{40,}$/);
    expect(created.body).not.toHaveProperty('token_hash');
    const rows = await t.platform.drivers.db.db.selectFrom('api_tokens').select('token_hash').execute();
    expect(rows.some((r) => r.token_hash === created.body.token)).toBe(false);

    const me = await t.request('GET', '/api/auth/me', { token: created.body.token });
    expect(me.status).toBe(200);
    expect(me.body.user.name).toBe('dana');

    const list = await t.request('GET', '/api/tokens', { token: dev.token });
    const listed = list.body.items.find((i: { id: string }) => i.id === created.body.id);
    expect(listed.name).toBe('ci');
    expect(JSON.stringify(list.body)).not.toContain(created.body.token);
  });

  it('a scoped token cannot exceed its scopes', async () => {
    const created = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: { name: 'read-only', scopes: ['project:read'] },
    });
    expect(created.status).toBe(201);
    const me = await t.request('GET', '/api/auth/me', { token: created.body.token });
    expect(me.body.permissions).toEqual(['project:read']);
    // The admin user holds admin:users, but this token does not carry it.
    const users = await t.request('GET', '/api/users', { token: created.body.token });
    expect(users.status).toBe(403);
    expect(users.body.error.code).toBe('forbidden');
    // ...and it cannot mint a stronger token.
    const escalate = await t.request('POST', '/api/tokens', {
      token: created.body.token,
      body: { name: 'escalate', scopes: ['admin:users'] },
    });
    expect(escalate.status).toBe(403);
  });

  it('scopes must be permission names', async () => {
    const res = await t.request('POST', '/api/tokens', {
      token: dev.token,
      body: { name: 'x', scopes: ['root:all'] },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe('body.scopes.0');
  });

  it('a project-restricted token cannot touch another project', async () => {
    const created = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: { name: 'alpha-only', project_id: projectA },
    });
    expect(created.status).toBe(201);
    expect(created.body.project_id).toBe(projectA);
    const own = await t.request('GET', `/api/projects/${projectA}/members`, { token: created.body.token });
    expect(own.status).toBe(200);
    const other = await t.request('GET', `/api/projects/${projectB}/members`, { token: created.body.token });
    expect([403, 404]).toContain(other.status);
    const global = await t.request('GET', '/api/users', { token: created.body.token });
    expect(global.status).toBe(403);
  });

  it('an expired token is refused with 401', async () => {
    const created = await t.request('POST', '/api/tokens', {
      token: dev.token,
      body: { name: 'short', expires_at: new Date(Date.now() + 60_000).toISOString() },
    });
    expect(created.status).toBe(201);
    expect((await t.request('GET', '/api/auth/me', { token: created.body.token })).status).toBe(200);
    await t.platform.drivers.db.db
      .updateTable('api_tokens')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', created.body.id)
      .execute();
    // The principal cache honours the token's own expiry; also clear it as a later request on another
    // instance would see the row.
    await t.platform.rbac.invalidate({ userId: dev.id });
    const res = await t.request('GET', '/api/auth/me', { token: created.body.token });
    expect(res.status).toBe(401);
    expect(res.body.error.reason).toBe('auth.token_expired');
  });

  it('expires_at in the past is rejected at creation', async () => {
    const res = await t.request('POST', '/api/tokens', {
      token: dev.token,
      body: { name: 'past', expires_at: '2001-01-01T00:00:00Z' },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.reason).toBe('auth.expiry_in_past');
  });

  it('a revoked token is refused with 401 at once', async () => {
    const created = await t.request('POST', '/api/tokens', { token: dev.token, body: { name: 'to-revoke' } });
    expect((await t.request('GET', '/api/auth/me', { token: created.body.token })).status).toBe(200);
    const revoke = await t.request('DELETE', `/api/tokens/${created.body.id}`, { token: dev.token });
    expect(revoke.status).toBe(204);
    const refused = await t.request('GET', '/api/auth/me', { token: created.body.token });
    expect(refused.status).toBe(401);
    expect(refused.body.error.reason).toBe('auth.token_invalid');
    const again = await t.request('DELETE', `/api/tokens/${created.body.id}`, { token: dev.token });
    expect(again.status).toBe(409);
    expect(again.body.error.reason).toBe('auth.token_already_revoked');
  });

  it("another user's token cannot be revoked by a non-admin", async () => {
    const other = await t.createUser('eve', ['developer']);
    const created = await t.request('POST', '/api/tokens', {
      token: other.token,
      body: { name: 'eve-token' },
    });
    const res = await t.request('DELETE', `/api/tokens/${created.body.id}`, { token: dev.token });
    expect(res.status).toBe(404);
    expect((await t.request('GET', '/api/auth/me', { token: created.body.token })).status).toBe(200);
  });

  it('records last use of a token', async () => {
    const created = await t.request('POST', '/api/tokens', { token: dev.token, body: { name: 'used' } });
    await t.request('GET', '/api/auth/me', { token: created.body.token });
    // Written asynchronously (throttled to once a minute per token).
    const lastUsed = await eventually(async () => {
      const row = await t.platform.drivers.db.db
        .selectFrom('api_tokens')
        .select('last_used_at')
        .where('id', '=', created.body.id)
        .executeTakeFirstOrThrow();
      return row.last_used_at;
    });
    expect(lastUsed).toBeInstanceOf(Date);
  });

  it('HTTP Basic works with name + password and name + token (for git)', async () => {
    const basic = (name: string, secret: string) =>
      `Basic ${Buffer.from(`${name}:${secret}`).toString('base64')}`;
    const withPassword = await t.request('GET', '/api/auth/me', {
      headers: { authorization: basic('dana', dev.password) },
    });
    expect(withPassword.status).toBe(200);
    const withToken = await t.request('GET', '/api/auth/me', {
      headers: { authorization: basic('dana', dev.token) },
    });
    expect(withToken.status).toBe(200);
    const wrongUser = await t.request('GET', '/api/auth/me', {
      headers: { authorization: basic('admin', dev.token) },
    });
    expect(wrongUser.status).toBe(401);
  });
});
