import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, insertProject, servicesMissing, type TestPlatform } from './helpers/app.js';

describe.skipIf(servicesMissing)('users', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(() => t?.close());

  it('creates a user with the documented request shape and never returns the hash', async () => {
    const res = await t.request('POST', '/api/users', {
      token: t.adminToken,
      body: { name: 'frank', email: 'frank@example.test', password: 'frank-password', display_name: 'Frank' },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: 'frank',
      email: 'frank@example.test',
      display_name: 'Frank',
      user_type: 'human',
      is_active: true,
    });
    expect(JSON.stringify(res.body)).not.toMatch(/argon2|password/);
    const row = await t.platform.drivers.db.db
      .selectFrom('users')
      .select('password_hash')
      .where('name', '=', 'frank')
      .executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^\$argon2id\$/);
  });

  it('duplicate name or email → 409', async () => {
    await t.createUser('gina');
    const byName = await t.request('POST', '/api/users', {
      token: t.adminToken,
      body: { name: 'gina', email: 'other@example.test', password: 'password-123' },
    });
    expect(byName.status).toBe(409);
    const byEmail = await t.request('POST', '/api/users', {
      token: t.adminToken,
      body: { name: 'gina2', email: 'gina@example.test', password: 'password-123' },
    });
    expect(byEmail.status).toBe(409);
  });

  it('rejects invalid names, emails and short passwords with 400 naming the field', async () => {
    const res = await t.request('POST', '/api/users', {
      token: t.adminToken,
      body: { name: 'Bad Name!', email: 'not-an-email', password: 'short' },
    });
    expect(res.status).toBe(400);
    const paths = res.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['body.name', 'body.email', 'body.password']));
  });

  it('lists users with cursor pagination', async () => {
    for (const n of ['p1', 'p2', 'p3', 'p4', 'p5']) await t.createUser(`page-${n}`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/api/users?limit=2&q=page-${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await t.request('GET', url, { token: t.adminToken });
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.items.map((u: { name: string }) => u.name));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(['page-p1', 'page-p2', 'page-p3', 'page-p4', 'page-p5']);
  });

  it('a user may read and update their own profile, and change their password only with the old one', async () => {
    const hank = await t.createUser('hank');
    expect((await t.request('GET', `/api/users/${hank.id}`, { token: hank.token })).status).toBe(200);
    const profile = await t.request('PATCH', `/api/users/${hank.id}`, {
      token: hank.token,
      body: { display_name: 'Hank H.' },
    });
    expect(profile.status).toBe(200);
    expect(profile.body.display_name).toBe('Hank H.');

    const noOld = await t.request('PATCH', `/api/users/${hank.id}`, {
      token: hank.token,
      body: { password: 'new-password-1' },
    });
    expect(noOld.status).toBe(400);
    const wrongOld = await t.request('PATCH', `/api/users/${hank.id}`, {
      token: hank.token,
      body: { password: 'new-password-1', old_password: 'nope-nope' },
    });
    expect(wrongOld.status).toBe(403);
    const ok = await t.request('PATCH', `/api/users/${hank.id}`, {
      token: hank.token,
      body: { password: 'new-password-1', old_password: hank.password },
    });
    expect(ok.status).toBe(200);
    expect(
      (await t.request('POST', '/api/auth/login', { body: { name: 'hank', password: 'new-password-1' } }))
        .status,
    ).toBe(200);

    const selfActivate = await t.request('PATCH', `/api/users/${hank.id}`, {
      token: hank.token,
      body: { is_active: false },
    });
    expect(selfActivate.status).toBe(403);
    const other = await t.createUser('ivy');
    expect((await t.request('GET', `/api/users/${other.id}`, { token: hank.token })).status).toBe(403);
  });

  it('deactivation ends sessions and tokens; the user row stays', async () => {
    const jack = await t.createUser('jack', ['developer']);
    const login = await t.request('POST', '/api/auth/login', {
      body: { name: 'jack', password: jack.password },
    });
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    expect((await t.request('GET', '/api/auth/me', { cookie })).status).toBe(200);
    expect((await t.request('DELETE', `/api/users/${jack.id}`, { token: t.adminToken })).status).toBe(204);
    expect((await t.request('GET', '/api/auth/me', { cookie })).status).toBe(401);
    expect((await t.request('GET', '/api/auth/me', { token: jack.token })).status).toBe(401);
    const row = await t.request('GET', `/api/users/${jack.id}`, { token: t.adminToken });
    expect(row.body.is_active).toBe(false);
    const sessions = await t.platform.drivers.db.db
      .selectFrom('auth_sessions')
      .select('id')
      .where('user_id', '=', jack.id)
      .execute();
    expect(sessions).toEqual([]);
  });

  it('an admin cannot deactivate themselves', async () => {
    const res = await t.request('DELETE', `/api/users/${t.adminId}`, { token: t.adminToken });
    expect(res.status).toBe(409);
  });

  it('unknown user → 404', async () => {
    const res = await t.request('GET', '/api/users/00000000-0000-4000-8000-000000000000', {
      token: t.adminToken,
    });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });
});

describe.skipIf(servicesMissing)('roles, bindings and project members', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(() => t?.close());

  const roleByName = async (name: string) => {
    const res = await t.request('GET', '/api/admin/roles', { token: t.adminToken });
    return res.body.items.find((r: { name: string }) => r.name === name);
  };

  it('lists the five system roles with the spec’s permissions', async () => {
    const res = await t.request('GET', '/api/admin/roles', { token: t.adminToken });
    const byName = Object.fromEntries(
      res.body.items.map((r: { name: string; permissions: string[] }) => [r.name, r.permissions]),
    );
    expect(Object.keys(byName).sort()).toEqual(['admin', 'agent', 'developer', 'ops', 'viewer']);
    expect(byName.admin).toHaveLength(13);
    expect(byName.agent).toEqual([]);
    expect(byName.viewer).toEqual(['project:read', 'deploy:read', 'observe:read']);
  });

  it('creates, updates and deletes a custom role; system roles cannot be deleted', async () => {
    const created = await t.request('POST', '/api/admin/roles', {
      token: t.adminToken,
      body: { name: 'auditor', description: 'reads things', permissions: ['observe:read'] },
    });
    expect(created.status).toBe(201);
    expect(created.body.is_system).toBe(false);
    const put = await t.request('PUT', `/api/admin/roles/${created.body.id}/permissions`, {
      token: t.adminToken,
      body: { permissions: ['observe:read', 'deploy:read'] },
    });
    expect(put.body.permissions).toEqual(['deploy:read', 'observe:read']);
    const get = await t.request('GET', `/api/admin/roles/${created.body.id}/permissions`, {
      token: t.adminToken,
    });
    expect(get.body.permissions).toEqual(['deploy:read', 'observe:read']);
    expect(
      (await t.request('DELETE', `/api/admin/roles/${created.body.id}`, { token: t.adminToken })).status,
    ).toBe(204);

    const viewer = await roleByName('viewer');
    const del = await t.request('DELETE', `/api/admin/roles/${viewer.id}`, { token: t.adminToken });
    expect(del.status).toBe(409);
    const admin = await roleByName('admin');
    const strip = await t.request('PUT', `/api/admin/roles/${admin.id}/permissions`, {
      token: t.adminToken,
      body: { permissions: [] },
    });
    expect(strip.status).toBe(409);
  });

  it('unknown permission names → 400; duplicate role name → 409', async () => {
    const bad = await t.request('POST', '/api/admin/roles', {
      token: t.adminToken,
      body: { name: 'x', permissions: ['root'] },
    });
    expect(bad.status).toBe(400);
    const dup = await t.request('POST', '/api/admin/roles', {
      token: t.adminToken,
      body: { name: 'viewer' },
    });
    expect(dup.status).toBe(409);
  });

  it('binds roles globally and per project, by name or id; duplicate binding → 409; unbinding', async () => {
    const kim = await t.createUser('kim');
    const project = await insertProject(t, { name: 'kims-project' });
    const viewer = await roleByName('viewer');
    const global = await t.request('POST', `/api/admin/users/${kim.id}/roles`, {
      token: t.adminToken,
      body: { role: 'viewer' },
    });
    expect(global.status).toBe(201);
    expect(global.body).toMatchObject({ role: 'viewer', project_id: null });
    const scoped = await t.request('POST', `/api/admin/users/${kim.id}/roles`, {
      token: t.adminToken,
      body: { role: viewer.id, project_id: project },
    });
    expect(scoped.status).toBe(201);
    expect(scoped.body.project_id).toBe(project);
    const dup = await t.request('POST', `/api/admin/users/${kim.id}/roles`, {
      token: t.adminToken,
      body: { role: 'viewer' },
    });
    expect(dup.status).toBe(409);
    const unknown = await t.request('POST', `/api/admin/users/${kim.id}/roles`, {
      token: t.adminToken,
      body: { role: 'nope' },
    });
    expect(unknown.status).toBe(404);

    const listed = await t.request('GET', `/api/admin/users/${kim.id}/roles`, { token: t.adminToken });
    expect(listed.body.items).toHaveLength(2);
    const unbind = await t.request('DELETE', `/api/admin/users/${kim.id}/roles/${viewer.id}`, {
      token: t.adminToken,
    });
    expect(unbind.status).toBe(204);
    const me = await t.request('GET', '/api/auth/me', { token: kim.token });
    expect(me.body.permissions).toEqual([]);
  });

  it('a project role grants its permissions on that project only', async () => {
    const lee = await t.createUser('lee');
    const mine = await insertProject(t, { name: 'lee-project' });
    const other = await insertProject(t, { name: 'not-lees' });
    await t.request('POST', `/api/projects/${mine}/members`, {
      token: t.adminToken,
      body: { user_id: lee.id, role: 'developer' },
    });
    expect((await t.request('GET', `/api/projects/${mine}/members`, { token: lee.token })).status).toBe(200);
    expect((await t.request('GET', `/api/projects/${other}/members`, { token: lee.token })).status).toBe(404);
    expect((await t.request('GET', '/api/auth/me', { token: lee.token })).body.permissions).toEqual([]);
  });

  it('the project owner manages members; other members cannot', async () => {
    const owner = await t.createUser('owner-olga');
    const member = await t.createUser('member-max');
    const project = await insertProject(t, { name: 'olgas', ownerId: owner.id });
    const add = await t.request('POST', `/api/projects/${project}/members`, {
      token: owner.token,
      body: { user_id: member.id, role: 'developer' },
    });
    expect(add.status).toBe(201);
    const list = await t.request('GET', `/api/projects/${project}/members`, { token: member.token });
    expect(
      list.body.items.map((m: { user_name: string; role: string }) => `${m.user_name}:${m.role}`),
    ).toEqual(['owner-olga:owner', 'member-max:developer']);
    const byMember = await t.request('POST', `/api/projects/${project}/members`, {
      token: member.token,
      body: { user_id: member.id, role: 'viewer' },
    });
    expect(byMember.status).toBe(403);
    const remove = await t.request('DELETE', `/api/projects/${project}/members/${member.id}`, {
      token: owner.token,
    });
    expect(remove.status).toBe(204);
    expect((await t.request('GET', `/api/projects/${project}/members`, { token: member.token })).status).toBe(
      404,
    );
  });
});

describe.skipIf(servicesMissing)('addressing users by name; names keep case', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(() => t?.close());

  it('a user name keeps its case, is unique ignoring case, and login ignores case', async () => {
    const created = await t.request('POST', '/api/users', {
      token: t.adminToken,
      body: { name: 'MixedCase', email: 'mixed@example.test', password: 'mixed-password' },
    });
    expect(created.status).toBe(201);
    expect(created.body.name).toBe('MixedCase');
    const again = await t.request('POST', '/api/users', {
      token: t.adminToken,
      body: { name: 'mixedcase', email: 'other-mixed@example.test', password: 'mixed-password' },
    });
    expect(again.status).toBe(409);
    expect(again.body.error.reason).toBe('auth.user_taken');
    const login = await t.request('POST', '/api/auth/login', {
      body: { name: 'MIXEDcase', password: 'mixed-password' },
    });
    expect(login.status).toBe(200);
    expect(login.body.user.name).toBe('MixedCase');
  });

  it('members and role bindings take a user name (any case) as well as an id', async () => {
    const bob = await t.createUser('bob');
    const project = await insertProject(t, { name: 'bobs-place' });
    const add = await t.request('POST', `/api/projects/${project}/members`, {
      token: t.adminToken,
      body: { user_id: 'bob', role: 'developer' },
    });
    expect(add.status).toBe(201);
    expect(add.body).toMatchObject({ user_id: bob.id, role: 'developer', project_id: project });
    const viaUser = await t.request('POST', `/api/projects/${project}/members`, {
      token: t.adminToken,
      body: { user: 'BOB', role: 'viewer' },
    });
    expect(viaUser.status).toBe(201);
    const several = await t.request('DELETE', `/api/projects/${project}/members/bob`, {
      token: t.adminToken,
    });
    expect(several.status).toBe(409);
    expect(several.body.error.reason).toBe('rbac.several_roles');
    const removed = await t.request('DELETE', `/api/projects/${project}/members/Bob?role=viewer`, {
      token: t.adminToken,
    });
    expect(removed.status).toBe(204);
    const unknown = await t.request('POST', `/api/projects/${project}/members`, {
      token: t.adminToken,
      body: { user: 'nobody-here', role: 'viewer' },
    });
    expect(unknown.status).toBe(404);
    const both = await t.request('POST', `/api/projects/${project}/members`, {
      token: t.adminToken,
      body: { user: 'bob', user_id: bob.id, role: 'viewer' },
    });
    expect(both.status).toBe(400);

    const bound = await t.request('POST', '/api/admin/users/Bob/roles', {
      token: t.adminToken,
      body: { role: 'viewer' },
    });
    expect(bound.status).toBe(201);
    expect(bound.body.user_id).toBe(bob.id);
    const dup = await t.request('POST', `/api/admin/users/${bob.id}/roles`, {
      token: t.adminToken,
      body: { role: 'viewer' },
    });
    expect(dup.body.error.reason).toBe('rbac.already_bound');
    const listed = await t.request('GET', '/api/admin/users/bob/roles', { token: t.adminToken });
    expect(listed.body.items.map((b: { role: string }) => b.role)).toContain('viewer');
    const unbind = await t.request('DELETE', '/api/admin/users/bob/roles/viewer', { token: t.adminToken });
    expect(unbind.status).toBe(204);
  });

  it('refusals carry their reason: system roles, the last admin', async () => {
    const roles = await t.request('GET', '/api/admin/roles', { token: t.adminToken });
    const viewer = roles.body.items.find((r: { name: string }) => r.name === 'viewer');
    const del = await t.request('DELETE', `/api/admin/roles/${viewer.id}`, { token: t.adminToken });
    expect(del.status).toBe(409);
    expect(del.body.error.reason).toBe('rbac.system_role');
    const last = await t.request('DELETE', '/api/admin/users/admin/roles/admin', { token: t.adminToken });
    expect(last.status).toBe(409);
    expect(last.body.error.reason).toBe('rbac.last_admin');
    const second = await t.createUser('second-admin');
    await t.request('POST', `/api/admin/users/${second.id}/roles`, {
      token: t.adminToken,
      body: { role: 'admin' },
    });
    const now = await t.request('DELETE', `/api/admin/users/${second.id}/roles/admin`, {
      token: t.adminToken,
    });
    expect(now.status).toBe(204);
  });
});

describe.skipIf(servicesMissing)('audit log', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(() => t?.close());

  it('records actor, action, resource and IP, and filters by them', async () => {
    const u = await t.createUser('audited');
    const res = await t.request('GET', `/api/audit?action=user.create&resource_id=${u.id}`, {
      token: t.adminToken,
    });
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(1);
    expect(res.body.items[0]).toMatchObject({
      actor_id: t.adminId,
      actor_name: 'admin',
      action: 'user.create',
      resource_type: 'user',
      resource_id: u.id,
      ip: '127.0.0.1',
    });
    const byActor = await t.request('GET', `/api/audit?actor=admin&action=user.*`, { token: t.adminToken });
    expect(byActor.body.items.every((i: { action: string }) => i.action.startsWith('user.'))).toBe(true);
  });

  it('pages newest first without gaps or repeats', async () => {
    for (let i = 0; i < 5; i++) await t.createUser(`audit-page-${i}`);
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/api/audit?action=user.create&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await t.request('GET', url, { token: t.adminToken });
      ids.push(...res.body.items.map((i: { id: string }) => i.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    const all = await t.platform.drivers.db.db
      .selectFrom('audit_log')
      .select('id')
      .where('action', '=', 'user.create')
      .execute();
    expect(ids).toHaveLength(all.length);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('a project owner reads their project’s audit; others need admin:users', async () => {
    const owner = await t.createUser('audit-owner');
    const stranger = await t.createUser('audit-stranger');
    const project = await insertProject(t, { name: 'audited-project', ownerId: owner.id });
    await t.request('POST', `/api/projects/${project}/members`, {
      token: owner.token,
      body: { user_id: stranger.id, role: 'viewer' },
    });
    const own = await t.request('GET', `/api/audit?project_id=${project}`, { token: owner.token });
    expect(own.status).toBe(200);
    expect(own.body.items.map((i: { action: string }) => i.action)).toContain('project.member_add');
    expect(
      (await t.request('GET', `/api/audit?project_id=${project}`, { token: stranger.token })).status,
    ).toBe(403);
    expect((await t.request('GET', '/api/audit', { token: owner.token })).status).toBe(403);
  });

  it('never stores passwords or tokens', async () => {
    const u = await t.createUser('secretive');
    const token = await t.request('POST', '/api/tokens', { token: u.token, body: { name: 'leak-check' } });
    await t.request('PATCH', `/api/users/${u.id}`, {
      token: t.adminToken,
      body: { password: 'another-password-9' },
    });
    const rows = JSON.stringify(await t.platform.drivers.db.db.selectFrom('audit_log').selectAll().execute());
    expect(rows).not.toContain(u.password);
    expect(rows).not.toContain(token.body.token);
    expect(rows).not.toContain('another-password-9');
    expect(rows).not.toContain('$argon2');
  });

  it('rejects a malformed cursor with 400', async () => {
    const res = await t.request('GET', '/api/audit?cursor=garbage', { token: t.adminToken });
    expect(res.status).toBe(400);
  });
});
