import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  createTestStore,
  eventually,
  servicesMissing,
  type TestPlatform,
  type TestStore,
} from './helpers/app.js';

/** Two app instances sharing one PostgreSQL schema and one Redis key space: only in the postgres run. */
describe.skipIf(servicesMissing)('cross-instance cache invalidation', () => {
  let store: TestStore;
  let a: TestPlatform;
  let b: TestPlatform;
  beforeAll(async () => {
    store = await createTestStore('postgres');
    a = await createTestPlatform({ store });
    b = await createTestPlatform({ store });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await store?.drop();
  });

  it('a role removed on instance A is enforced on instance B', async () => {
    const user = await a.createUser('ops-person', ['ops']);
    const roles = await a.request('GET', '/api/admin/roles', { token: a.adminToken });
    const ops = roles.body.items.find((r: { name: string }) => r.name === 'ops');

    // B resolves (and caches, locally and in Redis) the permissions while the role is bound.
    const before = await b.request('GET', '/api/auth/me', { token: user.token });
    expect(before.body.permissions).toContain('deploy:promote');
    const again = await b.request('GET', '/api/auth/me', { token: user.token });
    expect(again.body.permissions).toContain('deploy:promote');

    const removed = await a.request('DELETE', `/api/admin/users/${user.id}/roles/${ops.id}`, {
      token: a.adminToken,
    });
    expect(removed.status).toBe(204);

    // Pub/sub delivery to B takes a moment; it must happen well within the cache TTL (300 s).
    await eventually(
      async () => {
        const me = await b.request('GET', '/api/auth/me', { token: user.token });
        return !me.body.permissions.includes('deploy:promote');
      },
      3000,
      'instance B to drop the removed role',
    );
  });

  it('a token revoked on A is refused by B', async () => {
    const user = await a.createUser('token-user', ['viewer']);
    const created = await a.request('POST', '/api/tokens', { token: user.token, body: { name: 'shared' } });
    expect((await b.request('GET', '/api/auth/me', { token: created.body.token })).status).toBe(200);
    expect((await a.request('DELETE', `/api/tokens/${created.body.id}`, { token: user.token })).status).toBe(
      204,
    );
    await eventually(
      async () => (await b.request('GET', '/api/auth/me', { token: created.body.token })).status === 401,
      3000,
    );
  });

  it('a role permission change on A applies to every user on B', async () => {
    const user = await a.createUser('custom-user');
    const role = await a.request('POST', '/api/admin/roles', {
      token: a.adminToken,
      body: { name: 'custom', permissions: ['observe:read'] },
    });
    await a.request('POST', `/api/admin/users/${user.id}/roles`, {
      token: a.adminToken,
      body: { role: 'custom' },
    });
    await eventually(
      async () =>
        (await b.request('GET', '/api/auth/me', { token: user.token })).body.permissions.includes(
          'observe:read',
        ),
      3000,
    );
    const put = await a.request('PUT', `/api/admin/roles/${role.body.id}/permissions`, {
      token: a.adminToken,
      body: { permissions: ['observe:write'] },
    });
    expect(put.status).toBe(200);
    await eventually(async () => {
      const perms = (await b.request('GET', '/api/auth/me', { token: user.token })).body.permissions;
      return perms.includes('observe:write') && !perms.includes('observe:read');
    }, 3000);
  });

  it('a user deactivated on A loses access on B', async () => {
    const user = await a.createUser('leaver', ['developer']);
    expect((await b.request('GET', '/api/auth/me', { token: user.token })).status).toBe(200);
    expect((await a.request('DELETE', `/api/users/${user.id}`, { token: a.adminToken })).status).toBe(204);
    await eventually(
      async () => (await b.request('GET', '/api/auth/me', { token: user.token })).status === 401,
      3000,
    );
  });
});
