import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('repository browser API matches git', () => {
  let t: TestPlatform;
  let token: string;
  let id: string;
  const tmp = tempDir();
  const work = path.join(tmp.dir, 'work');
  const api = (p: string) => t.request('GET', `/api/projects/${id}${p}`, { token });

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    const base = t.baseUrl;
    const dev = await t.createUser('bea', ['developer']);
    token = dev.token;
    const res = await t.request('POST', '/api/projects', { token, body: { name: 'lib' } });
    id = res.body.id;
    await gitOk(['clone', authUrl(base, 'bea', token, '/bea/lib.git'), work]);
    mkdirSync(path.join(work, 'src', 'deep'), { recursive: true });
    writeFileSync(path.join(work, 'README.md'), 'hello\n');
    writeFileSync(path.join(work, 'src', 'a.ts'), 'export const a = 1;\n');
    writeFileSync(path.join(work, 'src', 'deep', 'b.ts'), 'export const b = 2;\n');
    writeFileSync(path.join(work, 'logo.bin'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]));
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'initial import'], { cwd: work });
    for (let i = 1; i <= 4; i++) {
      writeFileSync(path.join(work, 'src', 'a.ts'), `export const a = ${i + 1};\n`);
      await gitOk(['commit', '-am', `bump a to ${i + 1}`], { cwd: work });
    }
    await gitOk(['tag', '-a', 'v1.0', '-m', 'first release'], { cwd: work });
    await gitOk(['checkout', '-b', 'feature'], { cwd: work });
    writeFileSync(path.join(work, 'feature.txt'), 'new\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'feature work'], { cwd: work });
    await gitOk(['push', 'origin', 'main', 'feature', '--tags'], { cwd: work });
    await gitOk(['checkout', 'main'], { cwd: work });
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('branches and tags', async () => {
    const branches = await api('/branches');
    expect(
      branches.body.items.map((b: { name: string; is_default: boolean }) => [b.name, b.is_default]),
    ).toEqual([
      ['feature', false],
      ['main', true],
    ]);
    expect(branches.body.items[1].sha).toBe((await gitOk(['rev-parse', 'main'], { cwd: work })).trim());
    const tags = await api('/tags');
    expect(tags.body.items).toHaveLength(1);
    expect(tags.body.items[0]).toMatchObject({ name: 'v1.0', annotated: true, message: 'first release' });
    expect(tags.body.items[0].commit_sha).toBe(
      (await gitOk(['rev-parse', 'v1.0^{commit}'], { cwd: work })).trim(),
    );
  });

  it('tree entries are exactly what git ls-tree says', async () => {
    for (const dir of ['', 'src', 'src/deep']) {
      const res = await api(`/tree?ref=main&path=${encodeURIComponent(dir)}`);
      expect(res.status).toBe(200);
      const lsTree = await gitOk(['ls-tree', '-l', dir ? `main:${dir}` : 'main'], { cwd: work });
      const expected = lsTree
        .trim()
        .split('\n')
        .map((line) => {
          const [meta, name] = line.split('\t') as [string, string];
          const [mode, type, sha, size] = meta.split(/\s+/);
          return {
            name,
            path: dir ? `${dir}/${name}` : name,
            type,
            sha,
            mode,
            size: size === '-' ? null : Number(size),
          };
        });
      expect(res.body.entries).toEqual(expected);
    }
  });

  it('blob: text as utf8, binary as base64, raw bytes', async () => {
    const text = await api('/blob?ref=main&path=src/a.ts');
    expect(text.body).toMatchObject({ encoding: 'utf8', content: 'export const a = 5;\n', size: 20 });
    expect(text.body.sha).toBe((await gitOk(['rev-parse', 'main:src/a.ts'], { cwd: work })).trim());
    const bin = await api('/blob?path=logo.bin');
    expect(bin.body.encoding).toBe('base64');
    expect(Buffer.from(bin.body.content, 'base64')).toEqual(
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]),
    );
    const raw = await t.platform.fastify.inject({
      method: 'GET',
      url: `/api/projects/${id}/raw?path=logo.bin`,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(raw.statusCode).toBe(200);
    expect(raw.rawPayload).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]));
  });

  it('an older version of a file by tag', async () => {
    const res = await api('/blob?ref=v1.0&path=src/a.ts');
    expect(res.body.content).toBe('export const a = 5;\n');
    const first = await api('/blob?ref=main~4&path=src/a.ts');
    expect(first.body.content).toBe('export const a = 1;\n');
  });

  it('commits are paged and match git log, also by path', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await api(`/commits?ref=main&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((c: { sha: string }) => c.sha));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual((await gitOk(['log', '--format=%H', 'main'], { cwd: work })).trim().split('\n'));
    const byPath = await api('/commits?ref=main&path=README.md');
    expect(byPath.body.items.map((c: { title: string }) => c.title)).toEqual(['initial import']);
  });

  it('one commit with stats and patch, as git show says', async () => {
    const sha = (await gitOk(['rev-parse', 'main'], { cwd: work })).trim();
    const res = await api(`/commits/${sha}`);
    expect(res.body).toMatchObject({
      sha,
      title: 'bump a to 5',
      stats: { files_changed: 1, additions: 1, deletions: 1 },
    });
    expect(res.body.files).toEqual([{ path: 'src/a.ts', additions: 1, deletions: 1, binary: false }]);
    const show = await gitOk(['show', '--format=', '--no-color', sha], { cwd: work });
    expect(res.body.patch).toBe(show);
    const root = (await gitOk(['rev-list', '--max-parents=0', 'main'], { cwd: work })).trim();
    const first = await api(`/commits/${root}`);
    expect(first.body.stats.files_changed).toBe(4);
  });

  it('compare base…head', async () => {
    const res = await api('/compare?base=main&head=feature');
    expect(res.body.commits.map((c: { title: string }) => c.title)).toEqual(['feature work']);
    expect(res.body.files).toEqual([{ path: 'feature.txt', additions: 1, deletions: 0, binary: false }]);
    expect(res.body.merge_base_sha).toBe(
      (await gitOk(['merge-base', 'main', 'feature'], { cwd: work })).trim(),
    );
  });

  it.each([
    ['/tree?ref=nope', 404],
    ['/tree?ref=main&path=missing', 404],
    ['/tree?ref=main&path=README.md', 404],
    ['/blob?ref=main&path=src', 404],
    ['/blob?ref=main', 400],
    ['/blob?ref=main&path=../etc/passwd', 400],
    ['/blob?ref=main&path=/etc/passwd', 400],
    ['/tree?ref=--output=/tmp/x', 400],
    ['/tree?ref=main..feature', 400],
    ['/commits/zzzz', 400],
    ['/commits/abcdef1234', 404],
    ['/compare?base=main&head=nope', 404],
  ])('%s → %i with our own message', async (url, status) => {
    const res = await api(url);
    expect(res.status).toBe(status);
    expect(res.body.error.message).not.toMatch(/fatal|usage:|git /);
  });
});
