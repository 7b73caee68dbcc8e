import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { GitError, runGit } from './git.js';

/** Counts the spawns that go through the shared launcher; can make it fail to start. */
const state = vi.hoisted(() => ({ launched: 0, failLauncher: false }));
vi.mock('../core/launcher.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../core/launcher.js')>();
  const wrapped: import('../core/launcher.js').ProcessLauncher = {
    mode: 'process',
    spawn(options) {
      if (state.failLauncher) {
        return Promise.reject(new real.LauncherDiedError(real.LAUNCHER_DIED, 'launcher error: spawn EAGAIN'));
      }
      state.launched++;
      return real.sharedProcessLauncher().spawn(options);
    },
    close: () => real.sharedProcessLauncher().close(),
  };
  return { ...real, sharedProcessLauncher: () => wrapped };
});

const scratch = mkdtempSync(path.join(tmpdir(), 'platform-rungit-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const blobSha = (data: Buffer) =>
  createHash('sha1')
    .update(Buffer.concat([Buffer.from(`blob ${data.length}\0`), data]))
    .digest('hex');

describe('runGit', () => {
  const repo = path.join(scratch, 'repo.git');

  it('starts git through the shared launcher, in the given directory', async () => {
    const before = state.launched;
    await runGit(['init', '--bare', '--quiet', repo]);
    const { stdout, exitCode, truncated } = await runGit(['rev-parse', '--is-bare-repository'], {
      cwd: repo,
    });
    expect(stdout.toString()).toBe('true\n');
    expect(exitCode).toBe(0);
    expect(truncated).toBe(false);
    expect(state.launched).toBe(before + 2);
  });

  it('writes input to stdin exactly, small and large (1 MB, binary)', async () => {
    const small = await runGit(['hash-object', '--stdin'], { cwd: repo, input: 'hello\n' });
    expect(small.stdout.toString()).toBe(`${blobSha(Buffer.from('hello\n'))}\n`);
    const big = Buffer.alloc(1024 * 1024 + 3);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) & 0xff;
    const written = await runGit(['hash-object', '-w', '--stdin'], { cwd: repo, input: big });
    expect(written.stdout.toString().trim()).toBe(blobSha(big));
  });

  it('gives git the gitEnv() environment plus the extra variables', async () => {
    const { stdout } = await runGit(['var', 'GIT_AUTHOR_IDENT'], {
      cwd: repo,
      env: { GIT_AUTHOR_NAME: 'Ada', GIT_AUTHOR_EMAIL: 'ada@example.test' },
    });
    expect(stdout.toString()).toMatch(/^Ada <ada@example\.test> \d+ [+-]\d{4}\n$/);
  });

  it('turns a failure into a GitError with stderr, unless the exit code is declared ok', async () => {
    const err = await runGit(['rev-parse', '--verify', '--quiet', 'refs/heads/nope^{commit}'], {
      cwd: repo,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitError);
    expect((err as GitError).exitCode).toBe(1);
    const bad = await runGit(['cat-file', '-t', 'nope'], { cwd: repo }).catch((e: unknown) => e as GitError);
    expect(bad).toBeInstanceOf(GitError);
    expect(bad.stderr).toMatch(/fatal/);
    const ok = await runGit(['rev-parse', '--verify', '--quiet', 'refs/heads/nope^{commit}'], {
      cwd: repo,
      okExitCodes: [0, 1],
    });
    expect(ok.exitCode).toBe(1);
  });

  it('truncates stdout at maxOutputBytes', async () => {
    const big = Buffer.alloc(512 * 1024, 'a');
    const sha = (await runGit(['hash-object', '-w', '--stdin'], { cwd: repo, input: big })).stdout
      .toString()
      .trim();
    const result = await runGit(['cat-file', 'blob', sha], { cwd: repo, maxOutputBytes: 1000 });
    expect(result.truncated).toBe(true);
    expect(result.stdout).toEqual(Buffer.alloc(1000, 'a'));
  });

  it('kills the whole process group on timeout', async () => {
    const err = await runGit(['-c', 'alias.hang=!sleep 30', 'hang'], {
      cwd: repo,
      timeoutMs: 300,
    }).catch((e: unknown) => e as GitError);
    expect(err).toBeInstanceOf(GitError);
    expect(err.exitCode).toBe(null);
    expect(err.stderr).toContain('(timed out after 300 ms)');
  });

  it('rejects with the spawn error when the directory does not exist', async () => {
    await expect(runGit(['status'], { cwd: path.join(scratch, 'missing') })).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });

  // Last: after a launcher failure, runGit keeps spawning directly for a while.
  it('spawns git directly when the launcher cannot start', async () => {
    state.failLauncher = true;
    const before = state.launched;
    const { stdout } = await runGit(['hash-object', '--stdin'], { cwd: repo, input: 'hello\n' });
    expect(stdout.toString()).toBe(`${blobSha(Buffer.from('hello\n'))}\n`);
    await expect(runGit(['cat-file', '-t', 'nope'], { cwd: repo })).rejects.toBeInstanceOf(GitError);
    expect(state.launched).toBe(before);
  });
});
