import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

const UNSUPPORTED = 'does not support the Git LFS locking API';

describe.skipIf(servicesMissing)('Git LFS file locking with the stock git-lfs client', () => {
  let t: TestPlatform;
  let base: string;
  let lena: { id: string; token: string };
  let mark: { id: string; token: string };
  let reader: { id: string; token: string };
  let projectId: string;
  const tmp = tempDir();
  const env = () => ({ HOME: tmp.dir });
  const lenaDir = () => path.join(tmp.dir, 'lena');
  const markDir = () => path.join(tmp.dir, 'mark');

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    base = t.baseUrl;
    lena = await t.createUser('lena', ['developer']);
    mark = await t.createUser('mark', ['developer']);
    reader = await t.createUser('rita');
    const res = await t.request('POST', '/api/projects', { token: lena.token, body: { name: 'assets' } });
    expect(res.status).toBe(201);
    projectId = res.body.id;
    for (const [user, role] of [
      [mark, 'developer'],
      [reader, 'viewer'],
    ] as const) {
      const m = await t.request('POST', `/api/projects/${projectId}/members`, {
        token: lena.token,
        body: { user_id: user.id, role },
      });
      expect(m.status, JSON.stringify(m.body)).toBeLessThan(300);
    }
    await gitOk(['lfs', 'install', '--skip-repo'], { env: env() });
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  const lfsHeaders = (name: string, token: string) => ({
    authorization: `Basic ${Buffer.from(`${name}:${token}`).toString('base64')}`,
    'content-type': 'application/vnd.git-lfs+json',
    accept: 'application/vnd.git-lfs+json',
  });

  it('a push verifies locks without the "does not support the locking API" warning', async () => {
    await gitOk(['clone', authUrl(base, 'lena', lena.token, '/lena/assets.git'), lenaDir()], { env: env() });
    await gitOk(['lfs', 'track', '*.bin'], { cwd: lenaDir(), env: env() });
    writeFileSync(path.join(lenaDir(), 'model.bin'), Buffer.alloc(4096, 7));
    await gitOk(['add', '.gitattributes', 'model.bin'], { cwd: lenaDir(), env: env() });
    await gitOk(['commit', '-m', 'model'], { cwd: lenaDir(), env: env() });
    const push = await git(['push', 'origin', 'main'], { cwd: lenaDir(), env: env() });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).not.toContain(UNSUPPORTED);
    expect(push.stderr).not.toMatch(/locking API|locksverify/i);
  });

  it('git lfs lock, locks and a second lock of the same path (409 with the lock)', async () => {
    const lock = await git(['lfs', 'lock', 'model.bin'], { cwd: lenaDir(), env: env() });
    expect(lock.code, lock.stderr).toBe(0);
    expect(lock.stdout).toContain('Locked model.bin');
    const list = await gitOk(['lfs', 'locks'], { cwd: lenaDir(), env: env() });
    expect(list).toMatch(/model\.bin\s+lena\s+ID:[0-9a-f-]{36}/);

    const row = await t.platform.drivers.db.db
      .selectFrom('lfs_locks')
      .selectAll()
      .where('project_id', '=', projectId)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ path: 'model.bin', owner_id: lena.id, ref_name: 'refs/heads/main' });

    const again = await fetch(`${base}/lena/assets.git/info/lfs/locks`, {
      method: 'POST',
      headers: lfsHeaders('mark', mark.token),
      body: JSON.stringify({ path: 'model.bin' }),
    });
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toContain('application/vnd.git-lfs+json');
    const body = (await again.json()) as { lock: { id: string; owner: { name: string } }; message: string };
    expect(body.lock).toMatchObject({ id: row.id, path: 'model.bin', owner: { name: 'lena' } });
    expect(body.message).toContain('lena');
  });

  it('another user cannot push a change to the locked file, nor unlock it without being allowed to force', async () => {
    await gitOk(['clone', authUrl(base, 'mark', mark.token, '/lena/assets.git'), markDir()], { env: env() });
    writeFileSync(path.join(markDir(), 'model.bin'), Buffer.alloc(4096, 9));
    await gitOk(['commit', '-am', 'retrain'], { cwd: markDir(), env: env() });
    // git-lfs halts such a push once lock verification is on (it only warns before).
    await gitOk(['config', 'lfs.locksverify', 'true'], { cwd: markDir(), env: env() });
    const push = await git(['push', 'origin', 'main'], { cwd: markDir(), env: env() });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toContain('Cannot update locked files');
    expect(`${push.stdout}${push.stderr}`).toContain('model.bin');

    const unlock = await git(['lfs', 'unlock', 'model.bin'], { cwd: markDir(), env: env() });
    expect(unlock.code).not.toBe(0);
    const forced = await git(['lfs', 'unlock', '--force', 'model.bin'], { cwd: markDir(), env: env() });
    expect(forced.code).not.toBe(0);
    expect(`${forced.stdout}${forced.stderr}`).toContain('only the project owner or an administrator');
    expect(
      await t.platform.drivers.db.db
        .selectFrom('lfs_locks')
        .select('id')
        .where('project_id', '=', projectId)
        .execute(),
    ).toHaveLength(1);
  });

  it('verify answers ours and theirs; listing filters by path and id and pages', async () => {
    const asMark = await fetch(`${base}/lena/assets.git/info/lfs/locks/verify`, {
      method: 'POST',
      headers: lfsHeaders('mark', mark.token),
      body: JSON.stringify({}),
    });
    expect(asMark.status).toBe(200);
    const verified = (await asMark.json()) as { ours: unknown[]; theirs: { path: string }[] };
    expect(verified.ours).toEqual([]);
    expect(verified.theirs.map((l) => l.path)).toEqual(['model.bin']);

    // Two more locks by mark, to page over.
    for (const p of ['a.bin', 'b.bin']) {
      const r = await fetch(`${base}/lena/assets.git/info/lfs/locks`, {
        method: 'POST',
        headers: lfsHeaders('mark', mark.token),
        body: JSON.stringify({ path: p, ref: { name: 'refs/heads/main' } }),
      });
      expect(r.status).toBe(201);
    }
    const get = (query: string, who = reader) =>
      fetch(`${base}/lena/assets.git/info/lfs/locks${query}`, {
        headers: lfsHeaders(who === reader ? 'rita' : 'mark', who.token),
      });
    // A reader lists; the first page of two has a cursor to the third lock.
    const first = await get('?limit=2');
    expect(first.status).toBe(200);
    const page1 = (await first.json()) as { locks: { id: string; path: string }[]; next_cursor?: string };
    expect(page1.locks.map((l) => l.path)).toEqual(['model.bin', 'a.bin']);
    expect(page1.next_cursor).toBeTruthy();
    const page2 = (await (await get(`?limit=2&cursor=${page1.next_cursor}`)).json()) as {
      locks: { path: string }[];
      next_cursor?: string;
    };
    expect(page2.locks.map((l) => l.path)).toEqual(['b.bin']);
    expect(page2.next_cursor).toBeUndefined();
    const byPath = (await (await get('?path=a.bin')).json()) as { locks: { path: string }[] };
    expect(byPath.locks.map((l) => l.path)).toEqual(['a.bin']);
    const byId = (await (await get(`?id=${page1.locks[0]!.id}`)).json()) as { locks: { path: string }[] };
    expect(byId.locks.map((l) => l.path)).toEqual(['model.bin']);

    // A reader may list but not lock.
    const readerLock = await fetch(`${base}/lena/assets.git/info/lfs/locks`, {
      method: 'POST',
      headers: lfsHeaders('rita', reader.token),
      body: JSON.stringify({ path: 'c.bin' }),
    });
    expect(readerLock.status).toBe(403);
    const anon = await fetch(`${base}/lena/assets.git/info/lfs/locks`);
    expect(anon.status).toBe(401);
  });

  it('the owner unlocks; the project owner may force-unlock somebody else’s lock; both are audited', async () => {
    const unlock = await git(['lfs', 'unlock', 'model.bin'], { cwd: lenaDir(), env: env() });
    expect(unlock.code, unlock.stderr).toBe(0);
    expect(unlock.stdout).toContain('Unlocked model.bin');
    writeFileSync(path.join(lenaDir(), 'a.bin'), 'a');
    const forced = await git(['lfs', 'unlock', '--force', 'a.bin'], { cwd: lenaDir(), env: env() });
    expect(forced.code, forced.stderr).toBe(0);
    const left = await t.platform.drivers.db.db
      .selectFrom('lfs_locks')
      .select('path')
      .where('project_id', '=', projectId)
      .execute();
    expect(left.map((l) => l.path)).toEqual(['b.bin']);
    const audit = await t.platform.drivers.db.db
      .selectFrom('audit_log')
      .select(['action', 'actor_name'])
      .where('action', 'in', ['lfs.lock', 'lfs.unlock'])
      .orderBy('created_at')
      .execute();
    expect(audit).toEqual([
      { action: 'lfs.lock', actor_name: 'lena' },
      { action: 'lfs.lock', actor_name: 'mark' },
      { action: 'lfs.lock', actor_name: 'mark' },
      { action: 'lfs.unlock', actor_name: 'lena' },
      { action: 'lfs.unlock', actor_name: 'lena' },
    ]);

    // Unlocked: mark's push of the change now goes through.
    const push = await git(['push', 'origin', 'main'], { cwd: markDir(), env: env() });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).not.toContain(UNSUPPORTED);
    expect(readFileSync(path.join(markDir(), 'model.bin'))[0]).toBe(9);
  });

  it('tokens bound the lock routes: read scope lists but cannot lock, a token bound to another project finds nothing, strangers see nothing', async () => {
    const url = `${base}/lena/assets.git/info/lfs/locks`;
    const mint = async (body: Record<string, unknown>) => {
      const res = await t.request('POST', '/api/tokens', {
        token: lena.token,
        body: { name: 'bounded', ...body },
      });
      expect(res.status, res.text).toBe(201);
      return res.body.token as string;
    };
    const readOnly = await mint({ scopes: ['project:read'] });
    const other = await t.request('POST', '/api/projects', {
      token: lena.token,
      body: { name: 'elsewhere' },
    });
    const elsewhere = await mint({ project_id: other.body.id });
    const lock = (token: string) =>
      fetch(url, {
        method: 'POST',
        headers: lfsHeaders('lena', token),
        body: JSON.stringify({ path: 'scoped.bin' }),
      });

    expect((await fetch(url, { headers: lfsHeaders('lena', readOnly) })).status).toBe(200);
    expect((await lock(readOnly)).status).toBe(403);
    expect((await fetch(url, { headers: lfsHeaders('lena', elsewhere) })).status).toBe(404);
    expect((await lock(elsewhere)).status).toBe(404);
    const stranger = await t.createUser('sven');
    await t.request('PATCH', `/api/projects/${projectId}`, {
      token: lena.token,
      body: { visibility: 'private' },
    });
    expect((await fetch(url, { headers: lfsHeaders('sven', stranger.token) })).status).toBe(404);
    expect((await fetch(url, { headers: { accept: 'application/vnd.git-lfs+json' } })).status).toBe(401);
    const locks = await t.platform.drivers.db.db
      .selectFrom('lfs_locks')
      .select('path')
      .where('project_id', '=', projectId)
      .where('path', '=', 'scoped.bin')
      .execute();
    expect(locks).toEqual([]);
  });
});
