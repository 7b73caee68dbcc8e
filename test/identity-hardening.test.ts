import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

/**
 * Issue 11, items 2–7 and 9: each finding replayed as the attacker's request, black-box over HTTP
 * and the stock git client, asserting the defended answer and that nothing changed.
 */
describe.skipIf(servicesMissing)('identity hardening: the attacks of issue 11', () => {
  let t: TestPlatform;
  type User = { id: string; token: string; password: string };
  let owner: User;
  let globalDev: User;
  let globalViewer: User;
  let member: User;
  let project: { id: string; full_name: string; default_branch: string };
  let mainSha: string;
  const tmp = tempDir();
  const db = () => t.platform.drivers.db.db;

  const projectRow = () =>
    db()
      .selectFrom('projects')
      .select(['name', 'visibility', 'default_branch', 'is_active'])
      .where('id', '=', project.id)
      .executeTakeFirstOrThrow();
  const repoUrl = (user: string, secret: string) =>
    authUrl(t.baseUrl, user, secret, `/${project.full_name}.git`);
  const remoteSha = async (ref: string) => {
    const out = await gitOk(['ls-remote', repoUrl('olga', owner.token), ref]);
    return out.split('\t')[0] ?? '';
  };

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    owner = await t.createUser('olga', ['developer']);
    globalDev = await t.createUser('gdev', ['developer']);
    globalViewer = await t.createUser('gview', ['viewer']);
    member = await t.createUser('mdev');
    const created = await t.request('POST', '/api/projects', {
      token: owner.token,
      body: { name: 'secret-app', visibility: 'private' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    project = created.body;
    const added = await t.request('POST', `/api/projects/${project.id}/members`, {
      token: owner.token,
      body: { user_id: member.id, role: 'developer' },
    });
    expect(added.status, JSON.stringify(added.body)).toBe(201);
    // Some content: a commit on main, an issue and a secret.
    const work = path.join(tmp.dir, 'seed');
    await gitOk(['clone', repoUrl('olga', owner.token), work]);
    writeFileSync(path.join(work, 'README.md'), '# top secret\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'first'], { cwd: work });
    await gitOk(['push', 'origin', 'main'], { cwd: work });
    mainSha = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    const issue = await t.request('POST', `/api/projects/${project.id}/issues`, {
      token: owner.token,
      body: { title: 'the launch date' },
    });
    expect(issue.status, JSON.stringify(issue.body)).toBe(201);
    const secret = await t.request('POST', `/api/projects/${project.id}/secrets`, {
      token: owner.token,
      body: { name: 'DEPLOY_KEY', value: 'v3ry-s3cret-value' },
    });
    expect(secret.status, JSON.stringify(secret.body)).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  const readRoutes = (id: string) => [
    `/api/projects/${id}`,
    `/api/projects/${id}/tree`,
    `/api/projects/${id}/blob?path=README.md`,
    `/api/projects/${id}/raw?path=README.md`,
    `/api/projects/${id}/commits`,
    `/api/projects/${id}/issues`,
    `/api/projects/${id}/merge-requests`,
    `/api/projects/${id}/pipelines`,
    `/api/projects/${id}/pipelines/${randomUUID()}/steps/${randomUUID()}/logs`,
    `/api/projects/${id}/pipelines/${randomUUID()}/artifacts`,
    `/api/projects/${id}/secrets`,
    `/api/projects/${id}/members`,
    `/api/projects/${id}/webhooks`,
  ];

  it('2: a global developer or viewer cannot read a private project, over the API or git', async () => {
    for (const attacker of [globalDev, globalViewer]) {
      for (const [i, url] of readRoutes(project.id).entries()) {
        const res = await t.request('GET', url, { token: attacker.token });
        const random = await t.request('GET', readRoutes(randomUUID())[i]!, { token: attacker.token });
        expect({ url, status: res.status, body: res.body }).toEqual({
          url,
          status: 404,
          body: { error: { code: 'not_found', message: 'project not found', details: [] } },
        });
        expect(res.body).toEqual(random.body);
      }
      const list = await t.request('GET', '/api/projects?limit=200', { token: attacker.token });
      expect(list.status).toBe(200);
      expect(list.body.items.map((p: { id: string }) => p.id)).not.toContain(project.id);
    }
    const clone = await git(['clone', repoUrl('gdev', globalDev.token), path.join(tmp.dir, 'stolen')]);
    expect(clone.code).not.toBe(0);
    expect(clone.stderr).toMatch(/not found/i);
    // The defended side still works: a member clones, the owner and an admin read.
    await gitOk(['clone', repoUrl('mdev', member.token), path.join(tmp.dir, 'member-clone')]);
    for (const token of [member.token, owner.token, t.adminToken]) {
      const raw = await t.request('GET', `/api/projects/${project.id}/raw?path=README.md`, { token });
      expect(raw.status).toBe(200);
      expect(raw.text).toBe('# top secret\n');
    }
  });

  it('3: a project-level developer cannot change settings (visibility, default branch, name, archive, members, rules)', async () => {
    const before = await projectRow();
    const attempts: [string, string, unknown][] = [
      ['PATCH', `/api/projects/${project.id}`, { visibility: 'public' }],
      ['PATCH', `/api/projects/${project.id}`, { default_branch: 'other' }],
      ['PATCH', `/api/projects/${project.id}`, { name: 'renamed' }],
      ['DELETE', `/api/projects/${project.id}`, undefined],
      ['POST', `/api/projects/${project.id}/members`, { user_id: globalDev.id, role: 'developer' }],
      ['POST', `/api/projects/${project.id}/protected-branches`, { pattern: 'x' }],
      [
        'POST',
        `/api/projects/${project.id}/webhooks`,
        { url: 'https://example.test/hook', events: ['push'] },
      ],
    ];
    for (const [method, url, body] of attempts) {
      const audits = await t.auditCount();
      const res = await t.request(method, url, { token: member.token, ...(body ? { body } : {}) });
      expect({ method, url, body, status: res.status, code: res.body?.error?.code }).toEqual({
        method,
        url,
        body,
        status: 403,
        code: 'forbidden',
      });
      expect(await t.auditCount()).toBe(audits);
    }
    expect(await projectRow()).toEqual(before);
    expect(before.visibility).toBe('private');
    const anonymous = await t.request('GET', `/api/projects/${project.id}/raw?path=README.md`);
    expect(anonymous.status).toBe(404);
    const bindings = await db()
      .selectFrom('user_roles')
      .select('id')
      .where('user_id', '=', globalDev.id)
      .where('project_id', '=', project.id)
      .execute();
    expect(bindings).toEqual([]);
    // What project:write still covers: the description.
    const described = await t.request('PATCH', `/api/projects/${project.id}`, {
      token: member.token,
      body: { description: 'now described' },
    });
    expect(described.status).toBe(200);
  });

  it('4: a writer cannot push directly to a branch that needs approvals, force-push or delete it', async () => {
    const rule = await t.request('POST', `/api/projects/${project.id}/protected-branches`, {
      token: owner.token,
      body: { pattern: 'main', required_approvals: 1 },
    });
    expect(rule.status, JSON.stringify(rule.body)).toBe(201);
    const work = path.join(tmp.dir, 'writer');
    await gitOk(['clone', repoUrl('mdev', member.token), work]);
    writeFileSync(path.join(work, 'change.txt'), 'unreviewed\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'skip review'], { cwd: work });
    const ff = await git(['push', 'origin', 'main'], { cwd: work });
    expect(ff.code).not.toBe(0);
    expect(ff.stderr).toContain('changes go through a merge request');
    expect(await remoteSha('refs/heads/main')).toBe(mainSha);

    // Another history entirely: a non-fast-forward update of main.
    await gitOk(['checkout', '--orphan', 'rewrite'], { cwd: work });
    writeFileSync(path.join(work, 'other.txt'), 'other history\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'replaced history'], { cwd: work });
    const force = await git(['push', '--force', 'origin', 'rewrite:main'], { cwd: work });
    expect(force.code).not.toBe(0);
    expect(force.stderr).toContain('force push (non-fast-forward) is not allowed');
    const del = await git(['push', 'origin', ':main'], { cwd: work });
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain('cannot be deleted');
    expect(await remoteSha('refs/heads/main')).toBe(mainSha);

    // Other branches take pushes as before; a matching new branch does not.
    const feature = await git(['push', 'origin', 'HEAD:refs/heads/feature'], { cwd: work });
    expect(feature.code, feature.stderr).toBe(0);

    // allow_direct_push names who may still push directly (the owner decides).
    const allow = await t.request('PATCH', `/api/projects/${project.id}/protected-branches/${rule.body.id}`, {
      token: owner.token,
      body: { allow_direct_push: [member.id] },
    });
    expect(allow.status, JSON.stringify(allow.body)).toBe(200);
    expect(allow.body.allow_direct_push).toEqual([member.id]);
    await gitOk(['fetch', 'origin'], { cwd: work });
    await gitOk(['checkout', '-B', 'main', 'origin/main'], { cwd: work });
    writeFileSync(path.join(work, 'hotfix.txt'), 'allowed\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'hotfix'], { cwd: work });
    const allowed = await git(['push', 'origin', 'main'], { cwd: work });
    expect(allowed.code, allowed.stderr).toBe(0);
    const hotfix = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    expect(await remoteSha('refs/heads/main')).toBe(hotfix);
    // Still no force push or deletion for them.
    const delAgain = await git(['push', 'origin', ':main'], { cwd: work });
    expect(delAgain.code).not.toBe(0);
    expect(await remoteSha('refs/heads/main')).toBe(hotfix);
    mainSha = hotfix;
  });

  it('5: a project:read token cannot change the e-mail, revoke other tokens or change notification preferences', async () => {
    const minted = await t.request('POST', '/api/tokens', {
      token: owner.token,
      body: { name: 'read-only', scopes: ['project:read'] },
    });
    expect(minted.status).toBe(201);
    const readOnly = minted.body.token as string;
    const other = await t.request('POST', '/api/tokens', { token: owner.token, body: { name: 'ci' } });
    expect(other.status).toBe(201);

    const email = await t.request('PATCH', `/api/users/${owner.id}`, {
      token: readOnly,
      body: { email: 'attacker@evil.test' },
    });
    expect(email.status).toBe(403);
    expect(email.body.error.code).toBe('forbidden');
    const user = await db()
      .selectFrom('users')
      .select('email')
      .where('id', '=', owner.id)
      .executeTakeFirstOrThrow();
    expect(user.email).toBe('olga@example.test');

    const revoke = await t.request('DELETE', `/api/tokens/${other.body.id}`, { token: readOnly });
    const randomRevoke = await t.request('DELETE', `/api/tokens/${randomUUID()}`, { token: readOnly });
    expect(revoke.status).toBe(404);
    expect(revoke.body).toEqual(randomRevoke.body);
    const row = await db()
      .selectFrom('api_tokens')
      .select('revoked_at')
      .where('id', '=', other.body.id)
      .executeTakeFirstOrThrow();
    expect(row.revoked_at).toBeNull();
    const listed = await t.request('GET', '/api/tokens', { token: readOnly });
    expect(listed.body.items.map((i: { id: string }) => i.id)).toEqual([minted.body.id]);

    const prefs = await t.request('PUT', '/api/notifications/preferences', {
      token: readOnly,
      body: { items: [{ event_type: '*', channels: [] }] },
    });
    expect(prefs.status).toBe(403);
    const stored = await db()
      .selectFrom('notification_preferences')
      .select('event_type')
      .where('user_id', '=', owner.id)
      .execute();
    expect(stored).toEqual([]);
    // It may still do what its scope says: read the project and the caller's notifications.
    expect((await t.request('GET', `/api/projects/${project.id}`, { token: readOnly })).status).toBe(200);
    expect((await t.request('GET', '/api/notifications', { token: readOnly })).status).toBe(200);
  });

  it('5: a project-restricted token reads only notifications about its project', async () => {
    const otherProject = await t.request('POST', '/api/projects', {
      token: owner.token,
      body: { name: 'other-app', visibility: 'private' },
    });
    expect(otherProject.status).toBe(201);
    const [about, elsewhere] = await db()
      .insertInto('notifications')
      .values([
        {
          user_id: owner.id,
          project_id: project.id,
          type: 'issue.assigned',
          subject: 'in scope',
          channel: 'in_app',
        },
        {
          user_id: owner.id,
          project_id: otherProject.body.id,
          type: 'issue.assigned',
          subject: 'merger talks with ACME',
          channel: 'in_app',
        },
      ])
      .returning('id')
      .execute();
    const restricted = await t.request('POST', '/api/tokens', {
      token: owner.token,
      body: { name: 'restricted', project_id: project.id },
    });
    expect(restricted.status).toBe(201);
    const token = restricted.body.token as string;
    const list = await t.request('GET', '/api/notifications', { token });
    expect(list.status).toBe(200);
    expect(list.text).not.toContain('ACME');
    expect(list.body.items.map((n: { id: string }) => n.id)).toEqual([about!.id]);
    const count = await t.request('GET', '/api/notifications/unread-count', { token });
    expect(count.body).toEqual({ count: 1 });
    const mark = await t.request('PATCH', `/api/notifications/${elsewhere!.id}/read`, { token });
    expect(mark.status).toBe(404);
    const row = await db()
      .selectFrom('notifications')
      .select('status')
      .where('id', '=', elsewhere!.id)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('pending');
  });

  it('6: a child token never outlives, out-scopes or escapes its parent', async () => {
    const parentExpiry = new Date(Date.now() + 10 * 60_000);
    const parent = await t.request('POST', '/api/tokens', {
      token: owner.token,
      body: {
        name: 'short',
        scopes: ['project:read', 'project:write'],
        expires_at: parentExpiry.toISOString(),
      },
    });
    expect(parent.status).toBe(201);
    const parentToken = parent.body.token as string;
    const child = await t.request('POST', '/api/tokens', {
      token: parentToken,
      body: { name: 'child', expires_at: null },
    });
    expect(child.status, JSON.stringify(child.body)).toBe(201);
    expect(new Date(child.body.expires_at).getTime()).toBe(new Date(parent.body.expires_at).getTime());
    expect(child.body.scopes).toEqual(['project:read', 'project:write']);

    const count = async () =>
      (await db().selectFrom('api_tokens').select('id').where('user_id', '=', owner.id).execute()).length;
    const first = await count();
    const later = await t.request('POST', '/api/tokens', {
      token: parentToken,
      body: { name: 'later', expires_at: new Date(Date.now() + 86_400_000).toISOString() },
    });
    expect(later.status).toBe(422);
    expect(later.body.error.details[0].path).toBe('body.expires_at');
    const wider = await t.request('POST', '/api/tokens', {
      token: parentToken,
      body: { name: 'wider', scopes: ['project:read', 'secret:read'] },
    });
    expect(wider.status).toBe(403);
    expect(await count()).toBe(first);
    const restricted = await t.request('POST', '/api/tokens', {
      token: owner.token,
      body: { name: 'one-project', project_id: project.id },
    });
    const elsewhere = await t.request('POST', '/api/projects', {
      token: owner.token,
      body: { name: 'elsewhere', visibility: 'private' },
    });
    const before = await count();
    const escaped = await t.request('POST', '/api/tokens', {
      token: restricted.body.token,
      body: { name: 'escape', project_id: elsewhere.body.id },
    });
    expect(escaped.status).toBe(403);
    expect(await count()).toBe(before);
  });

  it('9: ids the caller cannot see answer exactly like random ids', async () => {
    const tokensBefore = await db().selectFrom('api_tokens').select('id').execute();
    const hidden = await t.request('POST', '/api/tokens', {
      token: globalDev.token,
      body: { name: 'probe', project_id: project.id },
    });
    const random = await t.request('POST', '/api/tokens', {
      token: globalDev.token,
      body: { name: 'probe', project_id: randomUUID() },
    });
    expect(hidden.status).toBe(404);
    expect(hidden.body).toEqual(random.body);
    expect(await db().selectFrom('api_tokens').select('id').execute()).toHaveLength(tokensBefore.length);

    // Delegations: someone else's id, and a project the delegator cannot see.
    const role = await t.request('POST', '/api/admin/roles', {
      token: t.adminToken,
      body: { name: 'delegator', permissions: ['admin:delegate', 'project:read'] },
    });
    expect(role.status).toBe(201);
    const delegator = await t.createUser('dora', ['delegator']);
    const granted = await t.request('POST', '/api/admin/delegations', {
      token: t.adminToken,
      body: { delegate_id: member.id, permission: 'project:read', project_id: project.id },
    });
    expect(granted.status).toBe(201);
    const revokeOther = await t.request('DELETE', `/api/admin/delegations/${granted.body.id}`, {
      token: globalDev.token,
    });
    const revokeRandom = await t.request('DELETE', `/api/admin/delegations/${randomUUID()}`, {
      token: globalDev.token,
    });
    expect(revokeOther.status).toBe(404);
    expect(revokeOther.body).toEqual(revokeRandom.body);
    const delegation = await db()
      .selectFrom('delegations')
      .select('revoked_at')
      .where('id', '=', granted.body.id)
      .executeTakeFirstOrThrow();
    expect(delegation.revoked_at).toBeNull();
    const onHidden = await t.request('POST', '/api/admin/delegations', {
      token: delegator.token,
      body: { delegate_id: globalDev.id, permission: 'project:read', project_id: project.id },
    });
    const onRandom = await t.request('POST', '/api/admin/delegations', {
      token: delegator.token,
      body: { delegate_id: globalDev.id, permission: 'project:read', project_id: randomUUID() },
    });
    expect(onHidden.status).toBe(404);
    expect(onHidden.body).toEqual(onRandom.body);

    // Members, webhooks and protection rules of a hidden project, as the random id answers.
    for (const [method, suffix, body] of [
      ['POST', 'members', { user_id: globalViewer.id, role: 'viewer' }],
      ['DELETE', `members/${member.id}`, undefined],
      ['GET', 'webhooks', undefined],
      ['POST', 'webhooks', { url: 'https://example.test/hook', events: ['push'] }],
      ['POST', 'protected-branches', { pattern: 'x' }],
    ] as const) {
      const a = await t.request(method, `/api/projects/${project.id}/${suffix}`, {
        token: globalDev.token,
        ...(body ? { body } : {}),
      });
      const b = await t.request(method, `/api/projects/${randomUUID()}/${suffix}`, {
        token: globalDev.token,
        ...(body ? { body } : {}),
      });
      expect({ suffix, status: a.status, body: a.body }).toEqual({ suffix, status: 404, body: b.body });
    }
    // A non-member and an unknown user answer the same to the owner.
    const nonMember = await t.request('DELETE', `/api/projects/${project.id}/members/${globalDev.id}`, {
      token: owner.token,
    });
    const unknown = await t.request('DELETE', `/api/projects/${project.id}/members/${randomUUID()}`, {
      token: owner.token,
    });
    expect(nonMember.status).toBe(404);
    expect(nonMember.body).toEqual(unknown.body);
  });
});

describe.skipIf(servicesMissing)('7: one rate limiter for every password check', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform({ config: { PLATFORM_LOGIN_RATE_LIMIT: '5' } });
  });
  afterAll(() => t?.close());

  it('wrong old_password guesses are limited like logins, and a login lock-out covers old_password and Basic', async () => {
    const victim = await t.createUser('victim');
    const hashBefore = async () =>
      (
        await t.platform.drivers.db.db
          .selectFrom('users')
          .select('password_hash')
          .where('id', '=', victim.id)
          .executeTakeFirstOrThrow()
      ).password_hash;
    const original = await hashBefore();
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await t.request('PATCH', `/api/users/${victim.id}`, {
        token: victim.token,
        body: { password: 'new-password-123', old_password: `guess-${i}` },
      });
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(statuses).toEqual([403, 403, 403, 403, 403, 429, 429]);
    // Even the right old password is refused while locked out; nothing changed.
    const right = await t.request('PATCH', `/api/users/${victim.id}`, {
      token: victim.token,
      body: { password: 'new-password-123', old_password: victim.password },
    });
    expect(right.status).toBe(429);
    expect(await hashBefore()).toBe(original);
    // The same counters: login and HTTP Basic from this IP are locked out too.
    const login = await t.request('POST', '/api/auth/login', {
      body: { name: 'victim', password: victim.password },
    });
    expect(login.status).toBe(429);
    const basic = await t.request('GET', '/api/auth/me', {
      headers: { authorization: `Basic ${Buffer.from(`victim:${victim.password}`).toString('base64')}` },
    });
    expect(basic.status).toBe(429);
  });
});
