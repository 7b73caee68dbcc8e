import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESERVED_PROJECT_NAMES } from '../src/projects/index.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('projects', () => {
  let t: TestPlatform;
  let owner: { id: string; token: string };
  let other: { id: string; token: string };
  let viewer: { id: string; token: string };
  const tmp = tempDir();

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    owner = await t.createUser('olivia', ['developer']);
    other = await t.createUser('oscar', ['agent']);
    viewer = await t.createUser('vince', ['viewer']);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  const create = (token: string, body: Record<string, unknown>) =>
    t.request('POST', '/api/projects', { token, body });

  it('creates the project row and its bare repository with HEAD on the default branch', async () => {
    const res = await create(owner.token, {
      name: 'api',
      description: 'the API',
      default_branch: 'trunk',
      visibility: 'internal',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      owner: 'olivia',
      name: 'api',
      full_name: 'olivia/api',
      visibility: 'internal',
      default_branch: 'trunk',
      archived: false,
      clone_url: `${t.baseUrl}/olivia/api.git`,
    });
    const dir = path.join(t.config.data_dir, 'repos', 'olivia', 'api.git');
    expect(existsSync(path.join(dir, 'HEAD'))).toBe(true);
    expect((await gitOk(['symbolic-ref', 'HEAD'], { cwd: dir })).trim()).toBe('refs/heads/trunk');
  });

  it('a viewer (no project:write) cannot create projects; duplicate names → 409; bad names → 400', async () => {
    expect((await create(viewer.token, { name: 'nope' })).status).toBe(403);
    const taken = await create(owner.token, { name: 'api' });
    expect(taken.status).toBe(409);
    expect(taken.body.error.reason).toBe('project.name_taken');
    for (const name of ['../x', 'X.GIT', 'a b', 'a/b', 'x.git', '-x', 'a'.repeat(64), 'a..b']) {
      expect((await create(owner.token, { name })).status, name).toBe(400);
    }
    const badBranch = await create(owner.token, { name: 'weird-branch', default_branch: 'a..b' });
    expect(badBranch.status).toBe(422);
    expect(badBranch.body.error.reason).toBe('project.invalid_branch_name');
  });

  it('names keep their case, are unique ignoring case, and every lookup (API, git URL) ignores case', async () => {
    const res = await create(owner.token, { name: 'Hello', visibility: 'internal' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      name: 'Hello',
      full_name: 'olivia/Hello',
      clone_url: `${t.baseUrl}/olivia/Hello.git`,
    });
    for (const name of ['hello', 'HELLO']) {
      const dup = await create(owner.token, { name });
      expect(dup.status, name).toBe(409);
      expect(dup.body.error.reason).toBe('project.name_taken');
    }
    for (const url of [
      '/api/projects/olivia/HELLO',
      '/api/projects/OLIVIA/hello',
      '/api/projects/olivia/Hello',
    ]) {
      const found = await t.request('GET', url, { token: other.token });
      expect(found.status, url).toBe(200);
      expect(found.body).toMatchObject({ id: res.body.id, name: 'Hello' });
    }
    const byOwner = await t.request('GET', '/api/projects?owner=OLIVIA&q=hello', { token: other.token });
    expect(byOwner.body.items.map((p: { name: string }) => p.name)).toEqual(['Hello']);
    // The repository directory is named as created; git URLs in any case reach it.
    const dir = path.join(t.config.data_dir, 'repos', 'olivia', 'Hello.git');
    expect(existsSync(path.join(dir, 'HEAD'))).toBe(true);
    const seed = path.join(tmp.dir, 'hello-seed');
    await gitOk(['clone', authUrl(t.baseUrl, 'olivia', owner.token, '/olivia/hello.git'), seed]);
    await gitOk(['commit', '--allow-empty', '-m', 'case'], { cwd: seed });
    await gitOk(['push', 'origin', 'main'], { cwd: seed });
    const sha = (await gitOk(['rev-parse', 'HEAD'], { cwd: seed })).trim();
    expect((await gitOk(['rev-parse', 'refs/heads/main'], { cwd: dir })).trim()).toBe(sha);
    const viaUpper = await git([
      'clone',
      authUrl(t.baseUrl, 'olivia', owner.token, '/OLIVIA/HELLO.git'),
      path.join(tmp.dir, 'hello-upper'),
    ]);
    expect(viaUpper.code, viaUpper.stderr).toBe(0);
    // Renaming to another case keeps one project and one directory, no redirect needed.
    const recased = await t.request('PATCH', `/api/projects/${res.body.id}`, {
      token: owner.token,
      body: { name: 'hello' },
    });
    expect(recased.status, JSON.stringify(recased.body)).toBe(200);
    expect(recased.body.name).toBe('hello');
    expect(existsSync(path.join(t.config.data_dir, 'repos', 'olivia', 'hello.git', 'HEAD'))).toBe(true);
    expect((await t.request('GET', '/api/projects/olivia/HELLO', { token: other.token })).body.id).toBe(
      res.body.id,
    );
    const redirects = await t.platform.drivers.db.db
      .selectFrom('project_redirects')
      .select('name')
      .where('project_id', '=', res.body.id)
      .execute();
    expect(redirects).toEqual([]);
    // Another project cannot take the name in another case by a rename either.
    const second = await create(owner.token, { name: 'hello-two' });
    const clash = await t.request('PATCH', `/api/projects/${second.body.id}`, {
      token: owner.token,
      body: { name: 'HELLO' },
    });
    expect(clash.status).toBe(409);
    expect(clash.body.error.reason).toBe('project.name_taken');
  });

  it('visibility: private is 404 to non-members, internal readable by any signed-in user but not writable', async () => {
    const priv = await create(owner.token, { name: 'secret-stuff' });
    expect((await t.request('GET', `/api/projects/${priv.body.id}`, { token: other.token })).status).toBe(
      404,
    );
    expect((await t.request('GET', `/api/projects/${priv.body.id}`)).status).toBe(404);
    const internal = (await t.request('GET', '/api/projects/olivia/api', { token: other.token })).body;
    expect(internal.name).toBe('api');
    expect((await t.request('GET', `/api/projects/${internal.id}`)).status).toBe(404);
    const patch = await t.request('PATCH', `/api/projects/${internal.id}`, {
      token: other.token,
      body: { description: 'x' },
    });
    expect(patch.status).toBe(403);
  });

  it('lists only what the caller may see, with filters and cursor pagination', async () => {
    await create(owner.token, { name: 'pub-1', visibility: 'public' });
    await create(owner.token, { name: 'pub-2', visibility: 'public' });
    const anon = await t.request('GET', '/api/projects');
    expect(anon.body.items.every((p: { visibility: string }) => p.visibility === 'public')).toBe(true);
    const forOther = await t.request('GET', '/api/projects?limit=1', { token: other.token });
    const names: string[] = [];
    let page = forOther;
    for (;;) {
      names.push(...page.body.items.map((p: { name: string }) => p.name));
      if (!page.body.next_cursor) break;
      page = await t.request('GET', `/api/projects?limit=1&cursor=${page.body.next_cursor}`, {
        token: other.token,
      });
    }
    expect(names).toEqual(expect.arrayContaining(['api', 'pub-1', 'pub-2']));
    expect(names).not.toContain('secret-stuff');
    const filtered = await t.request('GET', '/api/projects?visibility=public&q=pub-2', {
      token: other.token,
    });
    expect(filtered.body.items.map((p: { name: string }) => p.name)).toEqual(['pub-2']);
  });

  it('a rename whose later git step fails moves the repository back and changes nothing', async () => {
    const res = await create(owner.token, { name: 'half-renamed' });
    const dir = path.join(t.config.data_dir, 'repos', 'olivia', 'half-renamed.git');
    // A HEAD that is a directory: `git symbolic-ref` fails after the directory was moved.
    rmSync(path.join(dir, 'HEAD'));
    mkdirSync(path.join(dir, 'HEAD'));
    const failed = await t.request('PATCH', `/api/projects/${res.body.id}`, {
      token: owner.token,
      body: { name: 'fully-renamed', default_branch: 'dev' },
    });
    expect(failed.status).toBe(500);
    expect(existsSync(dir)).toBe(true);
    expect(existsSync(path.join(t.config.data_dir, 'repos', 'olivia', 'fully-renamed.git'))).toBe(false);
    const after = await t.request('GET', `/api/projects/${res.body.id}`, { token: owner.token });
    expect(after.body).toMatchObject({ name: 'half-renamed', default_branch: 'main' });
  });

  it('rename keeps old clone URLs and owner/name lookups working', async () => {
    const res = await create(owner.token, { name: 'old-name' });
    const seed = path.join(tmp.dir, 'seed');
    await gitOk(['clone', authUrl(t.baseUrl, 'olivia', owner.token, '/olivia/old-name.git'), seed]);
    await gitOk(['commit', '--allow-empty', '-m', 'x'], { cwd: seed });
    await gitOk(['push', 'origin', 'main'], { cwd: seed });
    const renamed = await t.request('PATCH', `/api/projects/${res.body.id}`, {
      token: owner.token,
      body: { name: 'new-name' },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body.clone_url).toBe(`${t.baseUrl}/olivia/new-name.git`);
    expect((await t.request('GET', '/api/projects/olivia/old-name', { token: owner.token })).body.id).toBe(
      res.body.id,
    );
    const viaOld = await git([
      'clone',
      authUrl(t.baseUrl, 'olivia', owner.token, '/olivia/old-name.git'),
      path.join(tmp.dir, 'via-old'),
    ]);
    expect(viaOld.code, viaOld.stderr).toBe(0);
    const pushOld = await git(['push', 'origin', 'main'], { cwd: seed });
    expect(pushOld.code, pushOld.stderr).toBe(0);
  });

  it('reserves the names of project sub-resources, so /api/projects/:owner/:name always resolves', async () => {
    const segments = new Set(
      t.platform.registry.routes
        .map((r) => /^\/api\/projects\/:id\/([a-z-]+)/.exec(r.url)?.[1])
        .filter((s): s is string => s !== undefined),
    );
    expect(segments.size).toBeGreaterThan(10);
    for (const segment of segments) expect(RESERVED_PROJECT_NAMES.has(segment), segment).toBe(true);
    for (const name of ['issues', 'Pipelines']) {
      const res = await create(owner.token, { name });
      expect(res.status, name).toBe(400);
      expect(res.body.error.reason).toBe('project.reserved_name');
      expect(res.body.error.details[0]).toMatchObject({ path: 'body.name' });
    }
  });

  it('a project-restricted token lists exactly its own project, private included', async () => {
    const mine = await create(owner.token, { name: 'restricted-one' });
    await create(owner.token, { name: 'restricted-two' });
    const token = await t.request('POST', '/api/tokens', {
      token: owner.token,
      body: { name: 'one-project', project_id: mine.body.id },
    });
    const list = await t.request('GET', '/api/projects?limit=200', { token: token.body.token });
    expect(list.status).toBe(200);
    expect(list.body.items.map((p: { name: string }) => p.name)).toEqual(['restricted-one']);
  });

  it('archive hides the project (404) and keeps the repository; only owner or admin', async () => {
    const res = await create(owner.token, { name: 'to-archive', visibility: 'internal' });
    expect((await t.request('DELETE', `/api/projects/${res.body.id}`, { token: other.token })).status).toBe(
      403,
    );
    expect((await t.request('DELETE', `/api/projects/${res.body.id}`, { token: owner.token })).status).toBe(
      204,
    );
    expect((await t.request('GET', `/api/projects/${res.body.id}`, { token: owner.token })).status).toBe(404);
    expect(existsSync(path.join(t.config.data_dir, 'repos', 'olivia', 'to-archive.git', 'HEAD'))).toBe(true);
    // Archived projects are hidden from the API (404 above); the service refuses with the reason.
    const actor = { id: owner.id, name: 'olivia', ip: null };
    await expect(t.platform.services.projects.archive(actor, res.body.id)).rejects.toMatchObject({
      status: 409,
      reason: 'project.archived',
    });
    await expect(
      t.platform.services.projects.update(actor, res.body.id, { description: 'x' }),
    ).rejects.toMatchObject({ status: 409, reason: 'project.archived' });
    const archived = await t.request('GET', '/api/projects?archived=true', { token: t.adminToken });
    expect(archived.body.items.map((p: { name: string }) => p.name)).toContain('to-archive');
  });

  it('protected branch rules: CRUD by the owner, not by other members', async () => {
    const res = await create(owner.token, { name: 'guarded' });
    const id = res.body.id;
    await t.request('POST', `/api/projects/${id}/members`, {
      token: owner.token,
      body: { user_id: other.id, role: 'developer' },
    });
    const byMember = await t.request('POST', `/api/projects/${id}/protected-branches`, {
      token: other.token,
      body: { pattern: 'main' },
    });
    expect(byMember.status).toBe(403);
    const rule = await t.request('POST', `/api/projects/${id}/protected-branches`, {
      token: owner.token,
      body: { pattern: 'release/*', required_approvals: 2 },
    });
    expect(rule.status).toBe(201);
    const twice = await t.request('POST', `/api/projects/${id}/protected-branches`, {
      token: owner.token,
      body: { pattern: 'release/*' },
    });
    expect(twice.status).toBe(409);
    expect(twice.body.error.reason).toBe('project.protection_pattern_taken');
    const unknown = await t.request('PATCH', `/api/projects/${id}/protected-branches/${randomUUID()}`, {
      token: owner.token,
      body: { allow_deletion: true },
    });
    expect(unknown.status).toBe(404);
    const patched = await t.request('PATCH', `/api/projects/${id}/protected-branches/${rule.body.id}`, {
      token: owner.token,
      body: { allow_force_push: true },
    });
    expect(patched.body).toMatchObject({
      pattern: 'release/*',
      allow_force_push: true,
      required_approvals: 2,
    });
    const empty = await t.request('PATCH', `/api/projects/${id}/protected-branches/${rule.body.id}`, {
      token: owner.token,
      body: {},
    });
    expect(empty.status).toBe(400);
    const list = await t.request('GET', `/api/projects/${id}/protected-branches`, { token: other.token });
    expect(list.body.items).toHaveLength(1);
    expect(
      (
        await t.request('DELETE', `/api/projects/${id}/protected-branches/${rule.body.id}`, {
          token: owner.token,
        })
      ).status,
    ).toBe(204);
  });

  it('git upload-pack accepts a gzip-encoded request body', async () => {
    const pub = await create(owner.token, { name: 'gz', visibility: 'public' });
    const seed = path.join(tmp.dir, 'gz');
    await gitOk(['clone', authUrl(t.baseUrl, 'olivia', owner.token, '/olivia/gz.git'), seed]);
    await gitOk(['commit', '--allow-empty', '-m', 'gz'], { cwd: seed });
    await gitOk(['push', 'origin', 'main'], { cwd: seed });
    const sha = (await gitOk(['rev-parse', 'HEAD'], { cwd: seed })).trim();
    const pkt = (s: string) => `${(s.length + 4).toString(16).padStart(4, '0')}${s}`;
    const request = `${pkt(`want ${sha}\n`)}0000${pkt('done\n')}`;
    const res = await fetch(`${t.baseUrl}/olivia/gz.git/git-upload-pack`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-git-upload-pack-request', 'content-encoding': 'gzip' },
      body: gzipSync(Buffer.from(request)),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-git-upload-pack-result');
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.includes(Buffer.from('PACK'))).toBe(true);
    expect(pub.status).toBe(201);
  });
});
