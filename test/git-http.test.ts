import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('git over smart HTTP with the stock git client', () => {
  let t: TestPlatform;
  let base: string;
  let dev: { id: string; token: string; password: string };
  let reader: { id: string; token: string; password: string };
  let project: { id: string; clone_url: string; full_name: string };
  const tmp = tempDir();

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    base = t.baseUrl;
    dev = await t.createUser('devon', ['developer']);
    reader = await t.createUser('rita');
    const res = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'webapp' } });
    expect(res.status).toBe(201);
    project = res.body;
    await t.request('POST', `/api/projects/${project.id}/members`, {
      token: dev.token,
      body: { user_id: reader.id, role: 'viewer' },
    });
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  const devUrl = () => authUrl(base, 'devon', dev.token, '/devon/webapp.git');

  it('answers clone_url under the public URL', () => {
    expect(project.clone_url).toBe(`${t.config.public_url}/devon/webapp.git`);
    expect(project.full_name).toBe('devon/webapp');
  });

  it('clone empty → commit → push → clone again gives an identical tree', async () => {
    const work = path.join(tmp.dir, 'work');
    const clone = await git(['clone', devUrl(), work]);
    expect(clone.code, clone.stderr).toBe(0);
    expect(clone.stderr).toContain('empty repository');
    writeFileSync(path.join(work, 'README.md'), '# webapp\n');
    writeFileSync(path.join(work, 'data.bin'), Buffer.from([0, 1, 2, 3, 255]));
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'first'], { cwd: work });
    const push = await git(['push', 'origin', 'main'], { cwd: work });
    expect(push.code, push.stderr).toBe(0);

    const again = path.join(tmp.dir, 'again');
    await gitOk(['clone', devUrl(), again]);
    const a = await gitOk(['ls-tree', '-r', 'HEAD'], { cwd: work });
    const b = await gitOk(['ls-tree', '-r', 'HEAD'], { cwd: again });
    expect(b).toBe(a);
    expect(await gitOk(['rev-parse', 'HEAD'], { cwd: again })).toBe(
      await gitOk(['rev-parse', 'HEAD'], { cwd: work }),
    );
  });

  it('a fetch over protocol v2 works', async () => {
    const dir = path.join(tmp.dir, 'v2');
    const r = await git(['-c', 'protocol.version=2', 'clone', devUrl(), dir]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('push without credentials gets the 401 Basic challenge (git asks for a user name)', async () => {
    const work = path.join(tmp.dir, 'work');
    const r = await git(['push', `${base}/devon/webapp.git`, 'main'], { cwd: work });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/could not read Username|Authentication failed/);
    const res = await fetch(`${base}/devon/webapp.git/info/refs?service=git-receive-pack`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
  });

  it('wrong credentials → 401 with the challenge', async () => {
    const res = await fetch(`${base}/devon/webapp.git/info/refs?service=git-upload-pack`, {
      headers: { authorization: `Basic ${Buffer.from('devon:wrong').toString('base64')}` },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
  });

  it('a reader can clone but a push is refused with 403', async () => {
    const dir = path.join(tmp.dir, 'reader');
    const readerUrl = authUrl(base, 'rita', reader.token, '/devon/webapp.git');
    await gitOk(['clone', readerUrl, dir]);
    writeFileSync(path.join(dir, 'x.txt'), 'x');
    await gitOk(['add', '.'], { cwd: dir });
    await gitOk(['commit', '-m', 'reader change'], { cwd: dir });
    const r = await git(['push', 'origin', 'main'], { cwd: dir });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('403');
  });

  it('a force push to the default branch is refused with the message shown by git', async () => {
    const work = path.join(tmp.dir, 'work');
    const before = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    writeFileSync(path.join(work, 'f.txt'), 'one');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'second'], { cwd: work });
    await gitOk(['push', 'origin', 'main'], { cwd: work });
    await gitOk(['reset', '--hard', before], { cwd: work });
    writeFileSync(path.join(work, 'g.txt'), 'diverged');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'diverged'], { cwd: work });
    const r = await git(['push', '--force', 'origin', 'main'], { cwd: work });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('remote: push rejected: refs/heads/main is protected: force push');
    expect(r.stderr).toContain('[remote rejected]');
    // the server ref did not move
    const remote = await gitOk(['ls-remote', devUrl(), 'refs/heads/main']);
    expect(remote).not.toContain((await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim());
    await gitOk(['fetch', 'origin'], { cwd: work });
    await gitOk(['reset', '--hard', 'origin/main'], { cwd: work });
  });

  it('deleting the default branch is refused; other branches can be force-pushed and deleted', async () => {
    const work = path.join(tmp.dir, 'work');
    const del = await git(['push', 'origin', ':main'], { cwd: work });
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain('cannot be deleted');
    await gitOk(['push', 'origin', 'HEAD:refs/heads/feature'], { cwd: work });
    await gitOk(['push', '--force', 'origin', 'HEAD~1:refs/heads/feature'], { cwd: work });
    await gitOk(['push', 'origin', ':feature'], { cwd: work });
  });

  it('protection rules extend the policy to matching branches', async () => {
    const rule = await t.request('POST', `/api/projects/${project.id}/protected-branches`, {
      token: dev.token,
      body: { pattern: 'release/*' },
    });
    expect(rule.status).toBe(201);
    const work = path.join(tmp.dir, 'work');
    await gitOk(['push', 'origin', 'HEAD:refs/heads/release/1'], { cwd: work });
    const force = await git(['push', '--force', 'origin', 'HEAD~1:refs/heads/release/1'], { cwd: work });
    expect(force.code).not.toBe(0);
    expect(force.stderr).toContain('refs/heads/release/1 is protected');
    // an admin may
    const adminUrl = authUrl(base, 'admin', t.adminToken, '/devon/webapp.git');
    await gitOk(['push', '--force', adminUrl, 'HEAD~1:refs/heads/release/1'], { cwd: work });
  });

  it('a push with .platform.yaml creates a pending pipeline row and a push event', async () => {
    const events: { ref: string; commits: unknown[] }[] = [];
    await t.platform.settle();
    const off = t.platform.events.on('push.received', (e) => {
      events.push(e);
    });
    const work = path.join(tmp.dir, 'work');
    writeFileSync(
      path.join(work, '.platform.yaml'),
      'steps:\n  - name: test\n    image: node:20\n    commands: [npm test]\n',
    );
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'add pipeline'], { cwd: work });
    await gitOk(['push', 'origin', 'main'], { cwd: work });
    // The push answers as soon as git is done; events and the trigger run right after.
    await t.platform.settle();
    const sha = (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    const rows = await t.platform.drivers.db.db
      .selectFrom('pipelines')
      .selectAll()
      .where('project_id', '=', project.id)
      .execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      status: 'pending',
      trigger: 'push',
      git_ref: 'refs/heads/main',
      commit_sha: sha,
    });
    off();
    expect(events.map((e) => e.ref)).toEqual(['refs/heads/main']);
    expect(events[0]!.commits).toHaveLength(1);
  });

  it('a public project can be cloned anonymously; an anonymous push is refused', async () => {
    const pub = await t.request('POST', '/api/projects', {
      token: dev.token,
      body: { name: 'open', visibility: 'public' },
    });
    expect(pub.status).toBe(201);
    const seed = path.join(tmp.dir, 'open-seed');
    await gitOk(['clone', authUrl(base, 'devon', dev.token, '/devon/open.git'), seed]);
    writeFileSync(path.join(seed, 'a.txt'), 'a');
    await gitOk(['add', '.'], { cwd: seed });
    await gitOk(['commit', '-m', 'a'], { cwd: seed });
    await gitOk(['push', 'origin', 'main'], { cwd: seed });
    const anon = path.join(tmp.dir, 'open-anon');
    await gitOk(['clone', `${base}/devon/open`, anon]);
    writeFileSync(path.join(anon, 'b.txt'), 'b');
    await gitOk(['add', '.'], { cwd: anon });
    await gitOk(['commit', '-m', 'b'], { cwd: anon });
    const r = await git(['push', 'origin', 'main'], { cwd: anon });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/could not read Username|Authentication failed/);
  });

  it('a private project is invisible (404) to a user who cannot read it', async () => {
    const stranger = await t.createUser('stranger');
    const r = await git([
      'clone',
      authUrl(base, 'stranger', stranger.token, '/devon/webapp.git'),
      path.join(tmp.dir, 'no'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not found|404/);
  });

  it.each([
    '/devon/..%2F..%2Fetc/info/refs?service=git-upload-pack',
    '/devon/web..app.git/info/refs?service=git-upload-pack',
    '/devon/webapp.git.git/info/refs?service=git-upload-pack',
    '/..%2Fdevon/webapp.git/info/refs?service=git-upload-pack',
    '/devon/%00webapp/info/refs?service=git-upload-pack',
    `/devon/${'a'.repeat(80)}/info/refs?service=git-upload-pack`,
    '/devon/webapp.git/info/refs?service=git-evil',
  ])('refuses the unsafe path %s with 4xx', async (url) => {
    const res = await fetch(`${base}${url}`, {
      headers: { authorization: `Basic ${Buffer.from(`devon:${dev.token}`).toString('base64')}` },
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });
});

describe.skipIf(servicesMissing)('git LFS with the stock git-lfs client', () => {
  let t: TestPlatform;
  let base: string;
  let dev: { id: string; token: string };
  const tmp = tempDir();

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    base = t.baseUrl;
    dev = await t.createUser('lena', ['developer']);
    expect(
      (await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'assets' } })).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('an LFS file round-trips through the object store', async () => {
    const env = { HOME: tmp.dir };
    await gitOk(['lfs', 'install', '--skip-repo'], { env });
    const url = authUrl(base, 'lena', dev.token, '/lena/assets.git');
    const work = path.join(tmp.dir, 'lfs-work');
    await gitOk(['clone', url, work], { env });
    await gitOk(['lfs', 'track', '*.bin'], { cwd: work, env });
    const payload = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) % 251;
    writeFileSync(path.join(work, 'big.bin'), payload);
    await gitOk(['add', '.gitattributes', 'big.bin'], { cwd: work, env });
    await gitOk(['commit', '-m', 'lfs object'], { cwd: work, env });
    const push = await git(['push', 'origin', 'main'], { cwd: work, env });
    expect(push.code, push.stderr).toBe(0);

    const keys = await t.platform.drivers.objects.list('lfs/');
    expect(keys).toHaveLength(1);
    expect(keys[0]!.size).toBe(payload.length);
    const row = await t.platform.drivers.db.db
      .selectFrom('lfs_objects')
      .selectAll()
      .executeTakeFirstOrThrow();
    expect(row.verified_at).not.toBeNull();

    const again = path.join(tmp.dir, 'lfs-again');
    const clone = await git(['clone', url, again], { env });
    expect(clone.code, clone.stderr).toBe(0);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(path.join(again, 'big.bin')).equals(payload)).toBe(true);
  });

  it('a batch for a missing object reports 404 per object, and malformed oids are refused', async () => {
    const headers = {
      authorization: `Basic ${Buffer.from(`lena:${dev.token}`).toString('base64')}`,
      'content-type': 'application/vnd.git-lfs+json',
      accept: 'application/vnd.git-lfs+json',
    };
    const missing = await fetch(`${base}/lena/assets.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ operation: 'download', objects: [{ oid: 'a'.repeat(64), size: 1 }] }),
    });
    expect(missing.status).toBe(200);
    const body = (await missing.json()) as { objects: { error?: { code: number } }[] };
    expect(body.objects[0]!.error?.code).toBe(404);
    const bad = await fetch(`${base}/lena/assets.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ operation: 'upload', objects: [{ oid: '../../etc/passwd', size: 1 }] }),
    });
    expect(bad.status).toBe(400);
    // Larger than the upload limit (git_body_limit_bytes): refused per object before any upload.
    const huge = await fetch(`${base}/lena/assets.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ operation: 'upload', objects: [{ oid: 'b'.repeat(64), size: 6 * 1024 ** 3 }] }),
    });
    expect(huge.status).toBe(200);
    const hugeBody = (await huge.json()) as { objects: { error?: { code: number; message: string } }[] };
    expect(hugeBody.objects[0]!.error).toEqual({
      code: 422,
      message: 'object is larger than the 5368709120-byte upload limit',
    });
    const anon = await fetch(`${base}/lena/assets.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.git-lfs+json' },
      body: JSON.stringify({ operation: 'download', objects: [{ oid: 'a'.repeat(64), size: 1 }] }),
    });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/^Basic/);
  });
});
