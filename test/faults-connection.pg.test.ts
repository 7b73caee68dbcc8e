/**
 * Faults at random moments, the connection half (issue #22 item 4): a distributed-mode platform on a
 * PostgreSQL server and a Redis server of the test's own (never the machine's shared ones), which the
 * test stops, kills and starts again. Meanwhile the platform answers 503 with the stable error body on
 * readiness and on API requests (reads and writes), stays up, and recovers by itself once the server
 * is back: readiness 200, reads and writes work, the same process throughout.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../src/store/embedded.js';
import { eventually, servicesMissing } from './helpers/app.js';
import { freePort, killAllChildren, makeTempDir, removeTempDirs } from './helpers/process.js';
import { type ApiCall, type ApiResult, apiClient, RestartablePlatform } from './helpers/restart.js';

const ADMIN_PASSWORD = 'faults-connection-admin-password';

function which(binary: string): string | undefined {
  try {
    return execFileSync('which', [binary], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const redisBinary = which('redis-server') ?? which('valkey-server');

/** A private Redis on `port`: no persistence, killed with SIGKILL, started again on the same port. */
class PrivateRedis {
  private child: ChildProcess | undefined;
  constructor(
    readonly binary: string,
    readonly port: number,
  ) {}
  async start(): Promise<void> {
    const child = spawn(
      this.binary,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      },
    );
    this.child = child;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    (child as ChildProcess & { exitedPromise?: Promise<void> }).exitedPromise = exited;
    await eventually(
      async () => {
        const { createConnection } = await import('node:net');
        return new Promise<boolean>((resolve) => {
          const s = createConnection({ port: this.port, host: '127.0.0.1' }, () => {
            s.end();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
      },
      10_000,
      'redis listening',
    );
  }
  async kill(): Promise<void> {
    const child = this.child as (ChildProcess & { exitedPromise?: Promise<void> }) | undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await child.exitedPromise;
  }
}

describe.skipIf(servicesMissing)('connection cut in distributed mode (private PostgreSQL and Redis)', () => {
  let database: EmbeddedPostgres | undefined;
  let pgDir = '';
  let redis: PrivateRedis | undefined;
  let platform: RestartablePlatform | undefined;
  let api: ApiCall;

  const startDatabase = async () => {
    // After a SIGKILL the old server's backends may still hold its shared memory a moment: retry.
    database = await eventually(
      () => EmbeddedPostgres.start({ dir: pgDir, ephemeral: true }),
      30_000,
      'the private PostgreSQL started',
    );
  };

  beforeAll(async () => {
    pgDir = path.join(makeTempDir('platform-faults-pg-'), 'pg');
    await startDatabase();
    const env: Record<string, string> = {
      // The unix socket of the private server (no TCP port: nothing else can reach it).
      PLATFORM_DATABASE_URL: `postgresql://postgres@localhost/platform?host=${encodeURIComponent(pgDir)}`,
    };
    if (redisBinary) {
      redis = new PrivateRedis(redisBinary, await freePort());
      await redis.start();
      env.PLATFORM_VALKEY_URL = `redis://127.0.0.1:${redis.port}`;
      env.PLATFORM_VALKEY_KEY_PREFIX = `faults:${randomBytes(4).toString('hex')}:`;
    }
    platform = await RestartablePlatform.create({
      prefix: 'platform-faults-conn-',
      adminPassword: ADMIN_PASSWORD,
      external: false,
      env,
    });
    await platform.start();
    const admin = await platform.adminApi();
    const token = await admin('POST', '/api/tokens', { name: 'faults-connection' });
    expect(token.status).toBe(201);
    api = apiClient(platform.base, { token: token.body.token as string });
  }, 180_000);

  afterAll(async () => {
    await platform?.stop().catch(() => undefined);
    await killAllChildren();
    await redis?.kill();
    await database?.stop();
    removeTempDirs();
  });

  const readiness = async (): Promise<ApiResult> => {
    const res = await fetch(`${platform!.base}/readyz`, { signal: AbortSignal.timeout(15_000) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /**
   * While a dependency is cut: readiness names it; a login (its attempt counter lives in the cache)
   * answers 503 `unavailable`; a token-authenticated read and write answer 503 `unavailable` when they
   * need the dependency (`apiNeedsIt`), otherwise 503 or their normal answer — never another 5xx.
   */
  const expectUnavailable = async (dependency: string, apiNeedsIt: boolean) => {
    const ready = await eventually(
      async () => {
        const r = await readiness();
        return r.status === 503 ? r : undefined;
      },
      30_000,
      `readiness 503 without ${dependency}`,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${platform!.server!.describe()}`);
    });
    expect(ready.body).toMatchObject({
      error: {
        code: 'unavailable',
        details: expect.arrayContaining([expect.objectContaining({ dependency })]),
      },
    });
    const unavailableBody = {
      error: { code: 'unavailable', message: 'a backing service is unreachable; retry shortly', details: [] },
    };
    const loginRes = await fetch(`${platform!.base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'admin', password: ADMIN_PASSWORD }),
    });
    expect(loginRes.status).toBe(503);
    expect(loginRes.headers.get('retry-after')).toBe('1');
    expect(await loginRes.json()).toEqual(unavailableBody);
    const answers: string[] = [];
    for (const [method, url, body, ok] of [
      ['GET', '/api/projects', undefined, 200],
      ['POST', '/api/projects', { name: `cut-${randomBytes(3).toString('hex')}` }, 201],
    ] as const) {
      const r = await api(method, url, body);
      answers.push(`${method} ${url} ${r.status}`);
      if (apiNeedsIt || r.status !== ok) {
        expect(r.status, `${method} ${url}: ${JSON.stringify(r.body)}`).toBe(503);
        expect(r.body).toEqual(unavailableBody);
      }
    }
    console.log(`[faults-connection] ${dependency} cut: readiness 503, login 503, ${answers.join(', ')}`);
    expect(platform!.server!.hasExited, 'the platform stays up').toBe(false);
  };

  /** Back: readiness 200, a write and the read of it, on the same process as before. */
  const expectRecovered = async (pid: number) => {
    await eventually(async () => (await readiness()).status === 200, 60_000, 'readiness 200 again');
    const name = `back-${randomBytes(3).toString('hex')}`;
    const created = await eventually(
      async () => {
        const r = await api('POST', '/api/projects', { name });
        return r.status === 201 ? r : undefined;
      },
      30_000,
      'a write accepted again',
    );
    const read = await api('GET', `/api/projects/${created.body.id as string}`);
    expect(read).toMatchObject({ status: 200, body: { name } });
    expect(platform!.server!.pid).toBe(pid);
    expect(platform!.server!.hasExited).toBe(false);
    expect(platform!.starts).toBe(1);
  };

  it('PostgreSQL stopped and started again: 503 meanwhile, then recovered without a platform restart', async () => {
    const pid = platform!.server!.pid;
    await database!.stop();
    await expectUnavailable('database', true);
    await startDatabase();
    await expectRecovered(pid);
  }, 180_000);

  it('PostgreSQL killed (SIGKILL of the postmaster) and started again: 503 meanwhile, then recovered', async () => {
    const pid = platform!.server!.pid;
    process.kill(database!.pid, 'SIGKILL');
    await expectUnavailable('database', true);
    await startDatabase();
    await expectRecovered(pid);
  }, 180_000);

  it.skipIf(!redisBinary)(
    'Redis killed and started again: 503 meanwhile, then recovered without a platform restart',
    async () => {
      const pid = platform!.server!.pid;
      await redis!.kill();
      await expectUnavailable('cache', false);
      await redis!.start();
      await expectRecovered(pid);
    },
    180_000,
  );
});
