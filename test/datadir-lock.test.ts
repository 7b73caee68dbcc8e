/**
 * One server per data directory, and CLI commands that write while it runs: the real `serve` and the
 * real CLI in child processes on one data directory. Embedded: the CLI reaches the server's bundled
 * PostgreSQL through its socket, and the change reaches the server's caches over LISTEN/NOTIFY.
 * External stores: the same through PostgreSQL and Valkey.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runningPostmaster } from '../src/store/index.js';
import { servicesMissing, storeMode } from './helpers/app.js';
import {
  type CliProcess,
  createExternalStores,
  type ExternalStores,
  freePort,
  killAllChildren,
  login,
  makeTempDir,
  removeTempDirs,
  runCli,
  startCli,
  waitForHttp,
} from './helpers/process.js';

const ADMIN_PASSWORD = 'lock-test-admin-password';

describe.skipIf(servicesMissing)(`data-directory lock and CLI writes (${storeMode})`, () => {
  let external: ExternalStores | undefined;
  afterEach(async () => {
    await killAllChildren();
    await external?.drop();
    external = undefined;
    removeTempDirs();
  });

  async function start(): Promise<{ server: CliProcess; env: Record<string, string>; base: string }> {
    const port = await freePort();
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: makeTempDir('platform-lock-'),
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
    };
    if (storeMode === 'postgres') {
      external = await createExternalStores();
      Object.assign(env, external.env);
    }
    const server = startCli(['serve'], env);
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/readyz`, server, { timeoutMs: 90_000 });
    return { server, env, base };
  }

  it('a second serve on the same data directory is refused and names the running one', async () => {
    const { server, env, base } = await start();
    const second = await runCli(['serve'], { ...env, PLATFORM_PORT: String(await freePort()) });
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain(`pid ${server.pid}`);
    expect(second.stderr).toMatch(/in use by `platform serve`/);
    // The first one is untouched.
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    server.signal('SIGTERM');
    expect(await server.waitForExit(30_000)).toEqual({ code: 0, signal: null });
    const dataDir = env.PLATFORM_DATA_DIR!;
    expect(existsSync(path.join(dataDir, 'platform.lock')), 'lock released').toBe(false);
    expect(runningPostmaster(path.join(dataDir, 'postgres')), 'database stopped').toBeUndefined();
  }, 180_000);

  it('admin reset-password and create-token while the server runs take effect in it at once', async () => {
    const { env, base } = await start();
    const before = await login(base, 'admin', ADMIN_PASSWORD);
    expect(before.status).toBe(200);
    const me = () => fetch(`${base}/api/auth/me`, { headers: { cookie: before.cookie! } });
    expect((await me()).status).toBe(200);

    const reset = await runCli(['admin', 'reset-password', 'admin', '--password', 'the-new-password-1'], env);
    expect(reset.code, reset.stdout + reset.stderr).toBe(0);
    expect((await login(base, 'admin', 'the-new-password-1')).status).toBe(200);
    expect((await login(base, 'admin', ADMIN_PASSWORD)).status).toBe(401);
    // The session opened before the reset is over (the server's session cache was invalidated).
    expect((await me()).status).toBe(401);

    const created = await runCli(['admin', 'create-token', 'admin', '--token-name', 'from-cli'], env);
    expect(created.code, created.stdout + created.stderr).toBe(0);
    const token = created.stdout.trim().split('\n').pop()!;
    const withToken = await fetch(`${base}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(withToken.status).toBe(200);
    expect(((await withToken.json()) as { user: { name: string } }).user.name).toBe('admin');
  }, 180_000);
});
