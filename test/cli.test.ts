/**
 * The real CLI as a user runs it: `node --import tsx src/main.ts <command>` in a child process with an
 * explicit environment. In the `postgres` project, `migrate` and `serve` run against a fresh
 * PostgreSQL database and Valkey/Redis; in the `embedded` project, on the bundled PostgreSQL the
 * platform starts in a temp data dir.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { openEmbeddedDb } from '../src/store/index.js';
import { loadMigrations } from '../src/store/migrate.js';
import { servicesMissing, storeMode } from './helpers/app.js';
import {
  createExternalStores,
  type ExternalStores,
  freePort,
  killAllChildren,
  login,
  makeTempDir,
  removeTempDirs,
  repoRoot,
  runCli,
  startCli,
  waitForHttp,
} from './helpers/process.js';

const packageVersion = (
  JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }
).version;
const migrationVersions = loadMigrations().map((m) => m.version);

describe.skipIf(servicesMissing)(`cli (${storeMode})`, () => {
  let external: ExternalStores | undefined;

  /** The store settings of this project: a fresh database + key prefix on the servers, or none (embedded). */
  async function storeEnv(): Promise<Record<string, string>> {
    if (storeMode === 'embedded') return {};
    external = await createExternalStores();
    return external.env;
  }

  afterEach(async () => {
    await killAllChildren();
    await external?.drop();
    external = undefined;
    removeTempDirs();
  });

  it('version prints the package version', async () => {
    const result = await runCli(['version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(packageVersion);
  });

  it('serve refuses an unknown PLATFORM_ variable, naming it', async () => {
    const dataDir = makeTempDir();
    const result = await runCli(['serve'], { PLATFORM_BOGUS: '1', PLATFORM_DATA_DIR: dataDir });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('PLATFORM_BOGUS');
    expect(result.stderr).toMatch(/unknown setting/);
    // Refused before touching anything.
    expect(existsSync(path.join(dataDir, 'postgres'))).toBe(false);
  });

  it('serve refuses PLATFORM_PORT=abc, naming it', async () => {
    const result = await runCli(['serve'], { PLATFORM_PORT: 'abc', PLATFORM_DATA_DIR: makeTempDir() });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("PLATFORM_PORT: expected a port number 1–65535, got 'abc'");
    expect(result.stderr).toContain('`platform config` shows every setting');
  });

  it('serve refuses a mistyped PLATFORM_ variable, suggesting the setting it was meant to be', async () => {
    const result = await runCli(['serve'], { PLATFORM_PROT: '8401', PLATFORM_DATA_DIR: makeTempDir() });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('PLATFORM_PROT: unknown setting; did you mean PLATFORM_PORT?');
  });

  it('config prints the effective values and where each came from, secrets masked', async () => {
    const masterKey = 'cd'.repeat(32);
    const result = await runCli(['config', '--log-level', 'debug'], {
      PLATFORM_PORT: '8401',
      PLATFORM_MASTER_KEY: masterKey,
    });
    expect(result.code, result.stderr).toBe(0);
    const line = (name: string) => result.stdout.split('\n').find((l) => l.startsWith(`${name} `));
    expect(line('PLATFORM_PORT')).toMatch(/^PLATFORM_PORT +8401 +environment$/);
    expect(line('PLATFORM_PUBLIC_URL')).toMatch(/http:\/\/localhost:8401 +default \(from PLATFORM_PORT\)$/);
    expect(line('PLATFORM_LOG_LEVEL')).toMatch(/debug +flag --log-level$/);
    expect(line('PLATFORM_HOST')).toMatch(/0\.0\.0\.0 +default$/);
    expect(line('PLATFORM_MASTER_KEY')).toMatch(/\*{8} \(set\) +environment$/);
    expect(result.stdout).not.toContain(masterKey);

    // Problems are listed after the table (exit 1), the table is still shown.
    const bad = await runCli(['config'], { PLATFORM_PORT: 'abc', PLATFORM_PROT: '1' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^PLATFORM_PORT +abc +environment — INVALID$/m);
    expect(bad.stderr).toContain("PLATFORM_PORT: expected a port number 1–65535, got 'abc'");
    expect(bad.stderr).toContain('did you mean PLATFORM_PORT?');
  }, 150_000);

  it('each command has its own --help; an unknown command gets a did-you-mean', async () => {
    const admin = await runCli(['admin', '--help']);
    expect(admin.code, admin.stderr).toBe(0);
    expect(admin.stdout).toMatch(/^Usage: platform admin create-user/);
    expect(admin.stdout).toContain('--expires-in-days');
    expect(admin.stdout).not.toContain('Commands:');

    const typo = await runCli(['serv']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe(
      "platform: unknown command 'serv'; did you mean 'serve'?\nRun `platform --help` for the usage.\n",
    );
  }, 150_000);

  it('doctor on an empty data directory leaves it empty and says the database is not set up yet', async () => {
    const dataDir = makeTempDir();
    const result = await runCli(['doctor'], { PLATFORM_DATA_DIR: dataDir, ...(await storeEnv()) });
    expect(result.stdout, result.stderr).toMatch(/git: /);
    if (storeMode === 'embedded') {
      expect(result.stdout).toMatch(/! database: embedded PostgreSQL not initialised yet/);
      expect(readdirSync(dataDir)).toEqual([]);
    } else {
      // An external database that was never migrated: pending migrations are a warning, not a pass.
      expect(result.stdout).toMatch(/! database: postgres reachable; \d+ migrations pending/);
    }
  }, 120_000);

  it('migrate applies every migration on a fresh store and exits 0', async () => {
    const dataDir = makeTempDir();
    const result = await runCli(['migrate'], { PLATFORM_DATA_DIR: dataDir, ...(await storeEnv()) });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    for (const version of migrationVersions) expect(result.stdout).toContain(`applying migration ${version}`);

    let applied: string[];
    if (external) {
      expect(existsSync(path.join(dataDir, 'postgres'))).toBe(false);
      applied = (
        await external.query<{ version: string }>('select version from schema_migrations order by 1')
      ).map((r) => r.version);
    } else {
      expect(statSync(path.join(dataDir, 'postgres')).isDirectory()).toBe(true);
      // The master key is generated once in the data dir, readable by the owner only.
      expect(statSync(path.join(dataDir, 'master.key')).mode & 0o777).toBe(0o600);
      const db = await openEmbeddedDb({ data_dir: dataDir, database_pool_size: 1 }, { command: 'test' });
      try {
        applied = (
          await sql<{ version: string }>`select version from schema_migrations order by 1`.execute(db.db)
        ).rows.map((r) => r.version);
      } finally {
        await db.close();
      }
    }
    expect(applied).toEqual(migrationVersions);

    // A second run has nothing to do.
    const again = await runCli(['migrate'], { PLATFORM_DATA_DIR: dataDir, ...external?.env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toContain('applying migration');
    expect(again.stdout).toContain('schema up to date');
  }, 150_000);

  it('admin create-user then create-token prints a usable API token', async () => {
    const env = { PLATFORM_DATA_DIR: makeTempDir(), ...(await storeEnv()) };
    const user = await runCli(['admin', 'create-user', 'bob', 'bob@x.test', '--password', 'pw123456'], env);
    expect(user.code, user.stdout + user.stderr).toBe(0);
    expect(user.stdout).toMatch(/created user bob \([0-9a-f-]{36}\)/);
    expect(user.stdout).not.toContain('pw123456');

    const token = await runCli(['admin', 'create-token', 'bob'], env);
    expect(token.code, token.stdout + token.stderr).toBe(0);
    const lines = token.stdout.trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(/^plat_api_\S+$/);

    const missing = await runCli(['admin', 'create-token', 'nobody'], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/user nobody not found/);
  }, 150_000);

  it('serve starts, prints the generated admin password once, serves logins and stops on SIGTERM', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const server = startCli(['serve'], {
      PLATFORM_DATA_DIR: makeTempDir(),
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      ...(await storeEnv()),
    });
    const health = await waitForHttp(`${base}/healthz`, server, { timeoutMs: 90_000 });
    expect(await health.json()).toMatchObject({ status: 'ok', version: packageVersion });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);

    const [, password] = await server.waitForOutput(/password: (\S+)/, 5000);
    expect(password).toBeDefined();
    expect(server.stdout.split(password!).length - 1, 'password printed exactly once').toBe(1);
    expect(server.stderr).not.toContain(password!);

    const bad = await login(base, 'admin', 'not-the-password');
    expect(bad.status).toBe(401);
    const good = await login(base, 'admin', password!);
    expect(good.status).toBe(200);
    expect(good.setCookie).toMatch(/^platform_session=[^;]+;.*HttpOnly/);
    const me = await fetch(`${base}/api/auth/me`, { headers: { cookie: good.cookie! } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ user: { name: 'admin' } });

    // Prometheus metrics: the default process metrics are prefixed platform_ once.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^platform_process_cpu_seconds_total /m);
    expect(metrics).toMatch(/^platform_nodejs_eventloop_lag_seconds /m);
    expect(metrics).not.toContain('platform_process_process_');

    server.signal('SIGTERM');
    const exit = await server.waitForExit(20_000);
    expect(exit, server.describe()).toEqual({ code: 0, signal: null });
    expect(server.stdout).toContain('shutdown complete');
  }, 150_000);
});
