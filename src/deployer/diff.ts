import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runGit } from '../core/git.js';

/** `git diff --no-index` of two texts (labels current/desired). */
export async function unifiedDiff(a: string, b: string, label: string): Promise<string> {
  if (a === b) return '';
  const dir = await mkdtemp(path.join(tmpdir(), 'platform-deploy-diff-'));
  try {
    await writeFile(path.join(dir, 'current'), a);
    await writeFile(path.join(dir, 'desired'), b);
    const res = await runGit(['diff', '--no-index', '--no-color', '--', 'current', 'desired'], {
      cwd: dir,
      okExitCodes: [0, 1],
      maxOutputBytes: 1024 * 1024,
    });
    return res.stdout
      .toString('utf8')
      .replace(/^diff --git .*\n/m, '')
      .replace(/^--- a\/current$/m, `--- ${label} (running)`)
      .replace(/^\+\+\+ b\/desired$/m, `+++ ${label} (desired)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
