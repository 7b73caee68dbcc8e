import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the stock git client with an isolated HOME and no prompts. Never throws: tests assert on code/stderr. */
export function git(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<GitResult> {
  return new Promise((resolve) => {
    execFile(
      'git',
      [
        '-c',
        'user.name=Test User',
        '-c',
        'user.email=test@example.test',
        '-c',
        'init.defaultBranch=main',
        ...args,
      ],
      {
        cwd: options.cwd,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: options.env?.HOME ?? tmpdir(),
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_TERMINAL_PROMPT: '0',
          GIT_ASKPASS: '',
          LANG: 'C',
          ...options.env,
        },
        maxBuffer: 64 * 1024 * 1024,
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** git, failing the test with git's own output when the command fails. */
export async function gitOk(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const r = await git(args, options);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

export function tempDir(prefix = 'platform-git-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `http://user:secret@host:port/owner/name.git` */
export function authUrl(baseUrl: string, user: string, secret: string, repoPath: string): string {
  const u = new URL(repoPath, baseUrl);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(secret);
  return u.toString();
}
