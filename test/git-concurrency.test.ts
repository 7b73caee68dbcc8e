import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('git under concurrency and crashes', () => {
  let t: TestPlatform;
  let url: string;
  let repoDir: string;
  const tmp = tempDir();

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    const dev = await t.createUser('cora', ['developer']);
    const res = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'busy' } });
    url = authUrl(t.baseUrl, 'cora', dev.token, '/cora/busy.git');
    repoDir = path.join(t.config.data_dir, 'repos', 'cora', 'busy.git');
    const seed = path.join(tmp.dir, 'seed');
    await gitOk(['clone', url, seed]);
    writeFileSync(path.join(seed, 'README.md'), 'seed\n');
    await gitOk(['add', '.'], { cwd: seed });
    await gitOk(['commit', '-m', 'seed'], { cwd: seed });
    await gitOk(['push', 'origin', 'main'], { cwd: seed });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  it('10 clients pushing different branches at once all succeed; git fsck is clean', async () => {
    const clients = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const dir = path.join(tmp.dir, `client-${i}`);
        await gitOk(['clone', url, dir]);
        await gitOk(['checkout', '-b', `branch-${i}`], { cwd: dir });
        for (let c = 0; c < 3; c++) {
          writeFileSync(path.join(dir, `file-${i}-${c}.txt`), `client ${i} commit ${c}\n`.repeat(100));
          await gitOk(['add', '.'], { cwd: dir });
          await gitOk(['commit', '-m', `client ${i} commit ${c}`], { cwd: dir });
        }
        return dir;
      }),
    );
    const results = await Promise.all(
      clients.map((dir, i) => git(['push', 'origin', `branch-${i}`], { cwd: dir })),
    );
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const refs = await gitOk(['for-each-ref', '--format=%(refname)', 'refs/heads/'], { cwd: repoDir });
    for (let i = 0; i < 10; i++) expect(refs).toContain(`refs/heads/branch-${i}`);
    const fsck = await git(['fsck', '--strict'], { cwd: repoDir });
    expect(fsck.code, fsck.stderr).toBe(0);
    await t.platform.settle();
    const audit = await t.platform.drivers.db.db
      .selectFrom('audit_log')
      .select('id')
      .where('action', '=', 'git.push')
      .execute();
    expect(audit.length).toBeGreaterThanOrEqual(11);
  });

  it('a client killed mid-push leaves refs unchanged and the repository consistent', async () => {
    const dir = path.join(tmp.dir, 'killed');
    await gitOk(['clone', url, dir]);
    // Enough incompressible data that the upload is still running when the client dies.
    writeFileSync(path.join(dir, 'big.dat'), randomBytes(40 * 1024 * 1024));
    await gitOk(['add', '.'], { cwd: dir });
    await gitOk(['commit', '-m', 'big'], { cwd: dir });
    const before = await gitOk(['for-each-ref'], { cwd: repoDir });
    const child = spawn('git', ['push', 'origin', 'main'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp.dir, GIT_TERMINAL_PROMPT: '0' },
      detached: true,
      stdio: 'ignore',
    });
    // Kill as soon as the server has started receiving (a receive-pack process exists), or after 1.5 s.
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      if (ps.includes('receive-pack --stateless-rpc')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    process.kill(-child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The server side notices the broken connection and its git process ends without moving refs.
    await eventually(
      async () =>
        !execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(
          `receive-pack --stateless-rpc ${repoDir}`,
        ),
      10_000,
    );
    expect(await gitOk(['for-each-ref'], { cwd: repoDir })).toBe(before);
    const fsck = await git(['fsck', '--strict'], { cwd: repoDir });
    expect(fsck.code, fsck.stderr).toBe(0);
    // and the next push goes through
    const retry = await git(['push', 'origin', 'main'], { cwd: dir });
    expect(retry.code, retry.stderr).toBe(0);
  });
});
