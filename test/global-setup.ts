import { mkdtempSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EmbeddedPostgres, migrate, openPostgres } from '../src/store/index.js';
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
