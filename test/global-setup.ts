import { Socket } from 'node:net';
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

export default async function setup(): Promise<void> {
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
