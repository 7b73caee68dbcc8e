/**
 * Helpers to run the real CLI (`node --import tsx src/main.ts …`) as a child process: one-shot
 * commands, a long-running `serve` with readiness polling and signals, free ports, temp data dirs and
 * a fresh PostgreSQL database + Valkey key prefix per test. Every child is tracked so `killAllChildren`
 * (call it in afterEach/afterAll) leaves no process behind, whatever a test did.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ValkeyCache } from '../../src/store/cache/index.js';
import { runningPostmaster, stopPostmaster } from '../../src/store/embedded.js';
import { testDatabaseUrl, testValkeyUrl } from './services.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The child's whole environment: PATH and HOME plus what the test sets. Never the runner's own
 * environment — a stray PLATFORM_* variable there would change (or break) what is being tested.
 */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/' };
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) env[key] = value;
  return env;
}

const running = new Set<CliProcess>();

/** A spawned CLI process with its output captured. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  /** Settles when the process has exited (code, or the signal that ended it). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly outputListeners = new Set<() => void>();

  constructor(args: string[], env: Record<string, string | undefined>) {
    // Own process group (detached): a signal reaches the CLI and anything it may start.
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
      cwd: repoRoot,
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running.add(this);
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      for (const listener of this.outputListeners) listener();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      for (const listener of this.outputListeners) listener();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this);
        for (const listener of this.outputListeners) listener();
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  /** Signals the whole process group (no-op once it has exited). */
  signal(signal: NodeJS.Signals): void {
    if (this.hasExited) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Waits for the process to exit within the deadline; throws with its output otherwise. */
  async waitForExit(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`process did not exit within ${timeoutMs} ms\n${this.describe()}`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL and wait until it is really gone (the data dir is free again). */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.waitForExit(10_000);
  }

  /**
   * Resolves with the first truthy value `test` returns for the output so far (stdout + stderr),
   * checked on every chunk so the caller can react within one event-loop turn; rejects at the
   * deadline or when the process exits first.
   */
  waitUntil<T>(
    test: (output: string) => T | undefined | null | false,
    what: string,
    timeoutMs = 30_000,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const value = test(this.output);
        if (value) return finish(() => resolve(value));
        if (this.hasExited)
          return finish(() => reject(new Error(`process exited before ${what}\n${this.describe()}`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`no ${what} within ${timeoutMs} ms\n${this.describe()}`))),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.outputListeners.delete(check);
        settle();
      };
      this.outputListeners.add(check);
      check();
    });
  }

  /** Resolves with the match as soon as stdout/stderr matches `pattern`. */
  waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return this.waitUntil((output) => output.match(pattern), `output matching ${pattern}`, timeoutMs);
  }

  /** Exit state and the tail of the output, for assertion messages. */
  describe(): string {
    const tail = (s: string) => s.slice(-4000);
    return `pid ${this.pid} exit ${JSON.stringify(this.exitInfo ?? 'running')}\n--- stdout ---\n${tail(this.stdout)}\n--- stderr ---\n${tail(this.stderr)}`;
  }
}

/** Starts `platform <args>` with exactly `env` (plus PATH/HOME). */
export function startCli(args: string[], env: Record<string, string | undefined> = {}): CliProcess {
  return new CliProcess(args, env);
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a one-shot command to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
): Promise<CliResult> {
  const proc = startCli(args, env);
  try {
    const { code, signal } = await proc.waitForExit(timeoutMs);
    return { code, signal, stdout: proc.stdout, stderr: proc.stderr };
  } finally {
    proc.signal('SIGKILL');
  }
}

/** SIGKILLs every child still running and waits for each to exit. */
export async function killAllChildren(): Promise<void> {
  await Promise.allSettled([...running].map((p) => p.kill()));
  // A killed platform leaves its embedded PostgreSQL running (the next start would stop it): stop
  // the servers of this test's data directories, so none outlives the test.
  await Promise.allSettled(
    [...tempDirs].map(async (dir) => {
      const pid = runningPostmaster(path.join(dir, 'postgres'));
      if (pid) await stopPostmaster(pid, 5000);
    }),
  );
}

/** A port nobody listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Temp directories created by a test, removed by `removeTempDirs`. */
const tempDirs = new Set<string>();

export function makeTempDir(prefix = 'platform-cli-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Polls `url` until it answers `status` (default 200) or the deadline passes; fails fast when the
 * process exits meanwhile.
 */
export async function waitForHttp(
  url: string,
  proc: CliProcess,
  { timeoutMs = 60_000, status = 200 }: { timeoutMs?: number; status?: number } = {},
): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.hasExited) throw new Error(`process exited while waiting for ${url}\n${proc.describe()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === status) return res;
      last = `HTTP ${res.status}: ${await res.text()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `${url} not answering ${status} within ${timeoutMs} ms (last: ${last})\n${proc.describe()}`,
  );
}

/** Logs in through the API; returns the status and the session cookie (name=value). */
export async function login(
  baseUrl: string,
  name: string,
  password: string,
): Promise<{ status: number; cookie: string | undefined; setCookie: string | null }> {
  const res = await fetch(`${baseUrl}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password }),
  });
  await res.arrayBuffer();
  const setCookie = res.headers.get('set-cookie');
  return { status: res.status, cookie: setCookie?.split(';')[0], setCookie };
}

/**
 * A fresh PostgreSQL database (on the test server) and a unique Valkey key prefix: the environment a
 * `serve` in the distributed set-up needs. `drop` removes both.
 */
export interface ExternalStores {
  env: { PLATFORM_DATABASE_URL: string; PLATFORM_VALKEY_URL: string; PLATFORM_VALKEY_KEY_PREFIX: string };
  databaseUrl: string;
  /** Runs a query on this database. */
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

export async function createExternalStores(): Promise<ExternalStores> {
  const suffix = randomBytes(6).toString('hex');
  const database = `platform_cli_${suffix}`;
  const keyPrefix = `test:cli:${suffix}:`;
  await withClient(testDatabaseUrl, (c) => c.query(`create database ${database}`));
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${database}`;
  const databaseUrl = url.toString();
  return {
    env: {
      PLATFORM_DATABASE_URL: databaseUrl,
      PLATFORM_VALKEY_URL: testValkeyUrl,
      PLATFORM_VALKEY_KEY_PREFIX: keyPrefix,
    },
    databaseUrl,
    query: (text, values) => withClient(databaseUrl, async (c) => (await c.query(text, values)).rows),
    drop: async () => {
      await withClient(testDatabaseUrl, (c) => c.query(`drop database if exists ${database} with (force)`));
      const cache = new ValkeyCache(testValkeyUrl, { keyPrefix });
      try {
        await cache.deleteByPrefix('');
      } finally {
        await cache.close();
      }
    },
  };
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Live (non-zombie) processes on this machine whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmd.includes(marker) && state !== 'Z') found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
