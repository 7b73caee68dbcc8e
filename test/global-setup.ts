import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  EmbeddedPostgres,
  migrate,
  openPostgres,
  runningPostmaster,
  stopPostmaster,
} from '../src/store/index.js';
import { TEMPLATE_DATABASE, testDatabaseUrl, testValkeyUrl } from './helpers/services.js';

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(u.port || defaultPort), u.hostname, () => done(true));
  });
}

/**
 * The embedded project's database server: the bundled PostgreSQL, started once for the run (every
 * worker shares it), with a migrated template database each test store is created from
 * (`CREATE DATABASE … TEMPLATE`: a copy of a few megabytes instead of running the migrations again).
 */
async function startEmbedded(): Promise<() => Promise<void>> {
  await removeOrphanedTestServers();
  const root = mkdtempSync(path.join(tmpdir(), 'platform-test-pg-'));
  const server = await EmbeddedPostgres.start({
    dir: path.join(root, 'postgres'),
    ephemeral: true,
    settings: { max_connections: '400' },
  });
  const admin = new pg.Client(server.connection('postgres'));
  await admin.connect();
  await admin.query(`create database ${TEMPLATE_DATABASE}`);
  await admin.end();
  const handle = await openPostgres({ connection: server.connection(TEMPLATE_DATABASE), poolSize: 1 });
  await migrate(handle.db);
  await handle.close();
  process.env.PLATFORM_TEST_EMBEDDED_DIR = server.socketDir;
  return async () => {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  };
}

/**
 * A test run killed before its teardown (timeout, Ctrl-C twice) leaves its server running, adopted
 * by init: stop those (parent pid 1, so no run is using them) and remove their directories.
 */
async function removeOrphanedTestServers(dryRun = false): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith('platform-test-pg-')) continue;
    const root = path.join(tmpdir(), entry);
    try {
      const pid = runningPostmaster(path.join(root, 'postgres'));
      if (pid) {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid !== 1) continue; // its run is still going
        if (!dryRun) await stopPostmaster(pid, 5000);
      } else if (Date.now() - statSync(root).mtimeMs < 3_600_000) {
        continue; // maybe a run that is just starting
      }
      removed.push(root);
      if (!dryRun) rmSync(root, { recursive: true, force: true });
    } catch {
      // gone meanwhile, or not ours to read: leave it
    }
  }
  return removed;
}

/** For checking what a run would clean up: `npx tsx test/global-setup.ts --dry-run`. */
if (process.argv.includes('--dry-run')) {
  console.log(await removeOrphanedTestServers(true));
}

export default async function setup(): Promise<() => Promise<void>> {
  const stopEmbedded = await startEmbedded();
  const postgresUp = await reachable(testDatabaseUrl, 5432);
  const valkey = await reachable(testValkeyUrl, 6379);
  process.env.PLATFORM_TEST_POSTGRES_AVAILABLE = postgresUp ? '1' : '0';
  process.env.PLATFORM_TEST_VALKEY_AVAILABLE = valkey ? '1' : '0';
  const missing = [
    !postgresUp && `PostgreSQL (${testDatabaseUrl})`,
    !valkey && `Valkey/Redis (${testValkeyUrl})`,
  ].filter(Boolean);
  if (missing.length === 0) return stopEmbedded;
  const message = `${missing.join(' and ')} not reachable: every suite that needs it is SKIPPED. Start the service or set PLATFORM_TEST_DATABASE_URL / PLATFORM_TEST_VALKEY_URL.`;
  if (process.env.PLATFORM_TEST_REQUIRE_SERVICES === '1') {
    await stopEmbedded();
    throw new Error(`PLATFORM_TEST_REQUIRE_SERVICES=1: ${message}`);
  }
  process.stderr.write(`\n${'!'.repeat(100)}\n!! ${message}\n${'!'.repeat(100)}\n\n`);
  return stopEmbedded;
}
