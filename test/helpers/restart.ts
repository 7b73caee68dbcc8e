/**
 * Restart scaffolding for tests that kill and start a real `platform serve` on one data directory:
 * the environment, start (ready on /readyz), SIGKILL of the process group, clean stop, an API client
 * (session cookie or token), SQL on the platform's own database while it runs, the processes a test
 * marked (command line or environment), and `git fsck` over every repository of the data directory.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { embeddedConnection } from '../../src/store/embedded.js';
import { storeMode } from './app.js';
import {
  type CliProcess,
  createExternalStores,
  type ExternalStores,
  freePort,
  login,
  makeTempDir,
  startCli,
  waitForHttp,
} from './process.js';

export interface ApiResult {
  status: number;
  body: Record<string, unknown>;
}

/** Calls the API with a session cookie (and the Origin writes need) or a bearer token. */
export type ApiCall = (method: string, url: string, body?: unknown) => Promise<ApiResult>;

export function apiClient(base: string, auth: { cookie: string } | { token: string }): ApiCall {
  return async (method, url, body) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: {
        ...('cookie' in auth
          ? { cookie: auth.cookie, origin: base }
          : { authorization: `Bearer ${auth.token}` }),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed };
  };
}

export interface RestartablePlatformOptions {
  /** Temp-dir prefix of the data directory. */
  prefix: string;
  adminPassword: string;
  /** More PLATFORM_* settings (they win over the defaults here). */
  env?: Record<string, string>;
  /** On the postgres test project: a fresh external database + key prefix (dropped by `dispose`). */
  external?: boolean;
}

/** One data directory (and, on the postgres project, one database) served by successive processes. */
export class RestartablePlatform {
  server: CliProcess | undefined;
  /** Starts so far (the first one included). */
  starts = 0;

  private constructor(
    readonly dataDir: string,
    readonly base: string,
    readonly env: Record<string, string>,
    readonly adminPassword: string,
    readonly external: ExternalStores | undefined,
  ) {}

  static async create(options: RestartablePlatformOptions): Promise<RestartablePlatform> {
    const dataDir = makeTempDir(options.prefix);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_PUBLIC_URL: base,
      PLATFORM_ADMIN_PASSWORD: options.adminPassword,
      PLATFORM_LOG_LEVEL: 'warn',
      ...options.env,
    };
    let external: ExternalStores | undefined;
    if ((options.external ?? true) && storeMode === 'postgres') {
      external = await createExternalStores();
      Object.assign(env, external.env);
    }
    return new RestartablePlatform(dataDir, base, env, options.adminPassword, external);
  }

  /** Starts `serve` and waits until /readyz answers 200. */
  async start(timeoutMs = 120_000): Promise<CliProcess> {
    if (this.server && !this.server.hasExited) throw new Error('the platform is already running');
    const server = startCli(['serve'], this.env);
    this.server = server;
    this.starts++;
    await waitForHttp(`${this.base}/readyz`, server, { timeoutMs });
    return server;
  }

  /** SIGKILL of the whole process group; resolves once the process has exited. */
  async kill(): Promise<void> {
    await this.server?.kill();
  }

  /** SIGTERM; the exit (a clean one is `{ code: 0, signal: null }`). */
  async stop(
    timeoutMs = 60_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    const server = this.server;
    if (!server || server.hasExited) return undefined;
    server.signal('SIGTERM');
    return server.waitForExit(timeoutMs);
  }

  /** Logs in as the bootstrap admin: an API client on the session cookie. */
  async adminApi(): Promise<ApiCall> {
    const session = await login(this.base, 'admin', this.adminPassword);
    if (session.status !== 200 || !session.cookie) throw new Error(`admin login failed: ${session.status}`);
    return apiClient(this.base, { cookie: session.cookie });
  }

  /**
   * A query on the platform's database while it runs: the external one, or the embedded server over
   * its unix socket in the data directory.
   */
  async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    if (this.external) return this.external.query<R>(text, values);
    const client = new pg.Client(embeddedConnection(path.join(this.dataDir, 'postgres')));
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  async dispose(): Promise<void> {
    await this.external?.drop();
  }
}

/** `git fsck --full` of every bare repository under `<dataDir>/repos`: the failures (empty = clean). */
export async function fsckRepositories(dataDir: string): Promise<{ checked: number; problems: string[] }> {
  const root = path.join(dataDir, 'repos');
  const repos: string[] = [];
  if (existsSync(root)) {
    for (const owner of readdirSync(root, { withFileTypes: true })) {
      if (!owner.isDirectory()) continue;
      for (const repo of readdirSync(path.join(root, owner.name), { withFileTypes: true })) {
        if (repo.isDirectory() && repo.name.endsWith('.git'))
          repos.push(path.join(root, owner.name, repo.name));
      }
    }
  }
  const problems: string[] = [];
  for (const repo of repos) {
    const r = await gitIn(repo, ['fsck', '--full', '--no-progress', '--strict']);
    // Dangling objects (a push cut off after its pack arrived) are not damage: fsck reports them and exits 0.
    if (r.code !== 0 || /^(error|fatal|missing|broken)/m.test(r.stderr + r.stdout))
      problems.push(`${repo}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  }
  return { checked: repos.length, problems };
}

/** git on a bare repository of the data dir (explicit env, no system config). */
export function gitIn(
  gitDir: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'git',
      [`--git-dir=${gitDir}`, ...args],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          GIT_CONFIG_NOSYSTEM: '1',
          HOME: '/nonexistent',
          LANG: 'C',
        },
        maxBuffer: 64 * 1024 * 1024,
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/**
 * Live processes that carry `marker` in their command line or their environment (an env variable
 * reaches every descendant: steps, deployed apps, agents and what they start), this test process
 * and its ancestors excluded.
 */
export function markedProcesses(marker: string): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state === 'Z') continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      let environ = '';
      try {
        environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      } catch {
        // another user's process: the command line is all we can see
      }
      if (cmd.includes(marker) || environ.includes(marker))
        found.push({ pid: Number(entry), cmd: cmd.replaceAll('\0', ' ').trim() });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** SIGKILLs the processes `markedProcesses(marker)` finds; returns how many. */
export function killMarked(marker: string): number {
  const found = markedProcesses(marker);
  for (const { pid } of found) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  return found.length;
}

/** A small seeded PRNG (mulberry32): the same seed, the same schedule. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Waits up to `timeoutMs` for every process carrying `marker` to be gone; those still there. */
export async function markedProcessesAfter(
  marker: string,
  timeoutMs: number,
): Promise<{ pid: number; cmd: string }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = markedProcesses(marker);
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}
