import { writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dumpPGlite, migrate, openPGlite } from '../src/store/index.js';
import { testDatabaseUrl, testValkeyUrl } from './helpers/services.js';

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

/** Migrates one PGlite database and saves its data directory: each test starts from a copy (no initdb per test). */
async function pgliteSnapshot(): Promise<string> {
  const handle = await openPGlite();
  await migrate(handle.db);
  const blob = await dumpPGlite(handle);
  await handle.close();
  const file = path.join(tmpdir(), `platform-test-pglite-${process.pid}.tar`);
  writeFileSync(file, Buffer.from(await blob.arrayBuffer()));
  return file;
}

export default async function setup(): Promise<void> {
  process.env.PLATFORM_TEST_PGLITE_SNAPSHOT = await pgliteSnapshot();
  const pg = await reachable(testDatabaseUrl, 5432);
  const valkey = await reachable(testValkeyUrl, 6379);
  process.env.PLATFORM_TEST_POSTGRES_AVAILABLE = pg ? '1' : '0';
  process.env.PLATFORM_TEST_VALKEY_AVAILABLE = valkey ? '1' : '0';
  const missing = [
    !pg && `PostgreSQL (${testDatabaseUrl})`,
    !valkey && `Valkey/Redis (${testValkeyUrl})`,
  ].filter(Boolean);
  if (missing.length === 0) return;
  const message = `${missing.join(' and ')} not reachable: every suite that needs it is SKIPPED. Start the service or set PLATFORM_TEST_DATABASE_URL / PLATFORM_TEST_VALKEY_URL.`;
  if (process.env.PLATFORM_TEST_REQUIRE_SERVICES === '1') {
    throw new Error(`PLATFORM_TEST_REQUIRE_SERVICES=1: ${message}`);
  }
  process.stderr.write(`\n${'!'.repeat(100)}\n!! ${message}\n${'!'.repeat(100)}\n\n`);
}
