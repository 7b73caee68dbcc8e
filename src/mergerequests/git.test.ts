import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { branchSha, compareAndSwapBranch } from './git.js';

/** The compare-and-swap that publishes merges: a merge computed on a stale target must not land. */
describe('compareAndSwapBranch', () => {
  let dir: string;
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
      cwd: dir,
      encoding: 'utf8',
    }).trim();
  let first: string;
  let second: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'platform-cas-'));
    git('init', '-q', '-b', 'main');
    git('commit', '-q', '--allow-empty', '-m', 'one');
    first = git('rev-parse', 'HEAD');
    git('commit', '-q', '--allow-empty', '-m', 'two');
    second = git('rev-parse', 'HEAD');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses when the branch is no longer at the expected commit, and leaves it alone', async () => {
    expect(await compareAndSwapBranch(dir, 'main', first, first, 'stale')).toBe(false);
    expect(await branchSha(dir, 'main')).toBe(second);
  });

  it('moves the branch when it is at the expected commit', async () => {
    expect(await compareAndSwapBranch(dir, 'main', first, second, 'current')).toBe(true);
    expect(await branchSha(dir, 'main')).toBe(first);
  });
});
