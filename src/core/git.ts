import { type ChildProcess, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { type LaunchedProcess, LauncherDiedError, sharedProcessLauncher } from './launcher.js';

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

/** Kills a process group by its id (git spawns helpers such as pack-objects into its group). */
function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
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
 * After the launcher failed to start, git is spawned directly for a while instead of paying for a
 * failed launcher start (itself a fork of this process) before every command.
 */
const LAUNCHER_RETRY_MS = 30_000;
let launcherUnusableUntil = 0;

/** What one git run collects, whichever way it was started. */
class Collector {
  readonly chunks: Buffer[] = [];
  size = 0;
  truncated = false;
  stderr = '';

  constructor(
    private readonly maxOutputBytes: number,
    private readonly kill: () => void,
  ) {}

  stdout(chunk: Buffer): void {
    if (this.truncated) return;
    this.size += chunk.length;
    if (this.size > this.maxOutputBytes) {
      this.truncated = true;
      this.chunks.push(chunk.subarray(0, chunk.length - (this.size - this.maxOutputBytes)));
      this.kill();
      return;
    }
    this.chunks.push(chunk);
  }

  stderrChunk(chunk: Buffer): void {
    if (this.stderr.length < 65_536) this.stderr += chunk.toString('utf8');
  }
}

interface RunSpec {
  args: string[];
  cwd: string | undefined;
  env: Record<string, string>;
  input: string | Buffer | undefined;
  timeoutMs: number;
  maxOutputBytes: number;
  okExitCodes: number[];
}

function settle(spec: RunSpec, out: Collector, code: number | null): RunGitResult {
  const stdout = Buffer.concat(out.chunks);
  if (out.truncated) return { stdout, stderr: out.stderr, exitCode: code ?? -1, truncated: true };
  if (code === null || !spec.okExitCodes.includes(code)) throw new GitError(spec.args, code, out.stderr);
  return { stdout, stderr: out.stderr, exitCode: code, truncated: false };
}

/**
 * The one way the platform runs git: an argument array (never a shell string), an explicit
 * environment, a timeout with process-group kill, stderr captured into a clear error.
 *
 * git is started by the shared process launcher (src/core/launcher.ts): forking the platform itself
 * costs ~20-25 ms per process once its heap is large, and blocks the event loop meanwhile. When the
 * launcher cannot be started, git is spawned directly so that it keeps working.
 */
export async function runGit(args: string[], options: RunGitOptions = {}): Promise<RunGitResult> {
  const spec: RunSpec = {
    args,
    cwd: options.cwd,
    env: gitEnv(options.env),
    input: options.input,
    timeoutMs: options.timeoutMs ?? 60_000,
    maxOutputBytes: options.maxOutputBytes ?? 64 * 1024 * 1024,
    okExitCodes: options.okExitCodes ?? [0],
  };
  if (Date.now() < launcherUnusableUntil) return runGitDirect(spec);
  let child: LaunchedProcess;
  try {
    child = await sharedProcessLauncher().spawn({
      file: 'git',
      args,
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      env: spec.env,
      stdin: spec.input !== undefined ? 'pipe' : 'ignore',
    });
  } catch (err) {
    // Not a git problem (missing cwd, no git on PATH): reported as a direct spawn would.
    if (!(err instanceof LauncherDiedError)) throw err;
    launcherUnusableUntil = Date.now() + LAUNCHER_RETRY_MS;
    return runGitDirect(spec);
  }
  return runGitLaunched(spec, child);
}

async function runGitLaunched(spec: RunSpec, child: LaunchedProcess): Promise<RunGitResult> {
  const out = new Collector(spec.maxOutputBytes, () => killGroup(child.pid));
  child.onOutput((chunk, stream) => (stream === 'stdout' ? out.stdout(chunk) : out.stderrChunk(chunk)));
  const timer = setTimeout(() => {
    out.stderr += `\n(timed out after ${spec.timeoutMs} ms)`;
    killGroup(child.pid);
  }, spec.timeoutMs);
  if (spec.input !== undefined) {
    child.write(spec.input);
    child.end();
  }
  let code: number | null;
  try {
    code = (await child.exited).code;
    await child.closed;
  } catch (err) {
    // The launcher died while git ran: nothing would ever see its output again.
    killGroup(child.pid);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return settle(spec, out, code);
}

/** The same run, forked from this process: the fallback when the launcher is unavailable. */
function runGitDirect(spec: RunSpec): Promise<RunGitResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out = new Collector(spec.maxOutputBytes, () => killTree(child));
    const timer = setTimeout(() => {
      out.stderr += `\n(timed out after ${spec.timeoutMs} ms)`;
      killTree(child);
    }, spec.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => out.stdout(chunk));
    child.stderr.on('data', (chunk: Buffer) => out.stderrChunk(chunk));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        resolve(settle(spec, out, code));
      } catch (err) {
        reject(err);
      }
    });
    child.stdin.on('error', () => {});
    child.stdin.end(spec.input ?? '');
  });
}

export interface GitStream {
  /** git's stdout: piping it applies backpressure to git itself (it blocks writing its pipe). */
  stdout: Readable;
  /** Kills git and its helpers (the reader went away). */
  kill(): void;
  /** git's exit: the code (null when killed) and the start of its stderr. */
  exited: Promise<{ code: number | null; stderr: string }>;
}

/**
 * git whose output is streamed instead of collected (a file download of any size): spawned
 * directly, since the launcher delivers output as messages it cannot slow down. The same
 * environment, argument-array and process-group rules as `runGit`; the timeout covers the whole
 * transfer, so a reader that stalls for ever does not keep git alive for ever.
 */
export function streamGit(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): GitStream {
  const child = spawn('git', args, {
    cwd: options.cwd,
    env: gitEnv(),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 8192) stderr += chunk.toString('utf8');
  });
  const timer = setTimeout(() => killTree(child), options.timeoutMs ?? 10 * 60_000);
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stderr: err.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  return { stdout: child.stdout, kill: () => killTree(child), exited };
}
