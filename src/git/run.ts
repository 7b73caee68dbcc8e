import { type ChildProcess, spawn } from 'node:child_process';

/** Environment every git process gets: nothing inherited but PATH, no user or system config, no prompts. */
export function gitEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: '/nonexistent',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    LANG: 'C',
    LC_ALL: 'C',
    ...extra,
  };
}

export class GitError extends Error {
  constructor(
    readonly args: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(
      `git ${args[0] ?? ''} failed (${exitCode ?? 'killed'}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
    this.name = 'GitError';
  }
}

export interface RunGitOptions {
  cwd?: string;
  env?: Record<string, string>;
  input?: string | Buffer;
  timeoutMs?: number;
  /** Cap on captured stdout; beyond it the process is killed and the result marked truncated. */
  maxOutputBytes?: number;
  /** Exit codes treated as success (e.g. `git diff --quiet` answers 1). */
  okExitCodes?: number[];
}

export interface RunGitResult {
  stdout: Buffer;
  stderr: string;
  exitCode: number;
  truncated: boolean;
}

/** Kills the whole process group (git spawns helpers such as pack-objects). */
export function killTree(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/**
 * The one way the platform runs git: an argument array (never a shell string), an explicit
 * environment, a timeout with process-group kill, stderr captured into a clear error.
 */
export function runGit(args: string[], options: RunGitOptions = {}): Promise<RunGitResult> {
  const {
    cwd,
    env,
    input,
    timeoutMs = 60_000,
    maxOutputBytes = 64 * 1024 * 1024,
    okExitCodes = [0],
  } = options;
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd,
      env: gitEnv(env),
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    let stderr = '';
    const timer = setTimeout(() => {
      stderr += `\n(timed out after ${timeoutMs} ms)`;
      killTree(child);
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      if (truncated) return;
      size += chunk.length;
      if (size > maxOutputBytes) {
        truncated = true;
        chunks.push(chunk.subarray(0, chunk.length - (size - maxOutputBytes)));
        killTree(child);
        return;
      }
      chunks.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 65_536) stderr += chunk.toString('utf8');
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(chunks);
      if (truncated) return resolve({ stdout, stderr, exitCode: code ?? -1, truncated });
      if (code === null || !okExitCodes.includes(code)) return reject(new GitError(args, code, stderr));
      resolve({ stdout, stderr, exitCode: code, truncated });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}
