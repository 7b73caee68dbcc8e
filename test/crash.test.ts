/**
 * Crash safety of the real server process: SIGKILL during start-up migrations and during a burst of
 * writes, then start again. Embedded: the bundled PostgreSQL in the data dir (inspected between runs,
 * when no process holds it: the inspection stops the server the killed platform left running, as the
 * next `serve` would); on PostgreSQL + Valkey a fresh database and key prefix per test.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { openEmbeddedDb, openPostgres, runningPostmaster } from '../src/store/index.js';
import { loadMigrations } from '../src/store/migrate.js';
import type { Database } from '../src/store/schema.js';
import { servicesMissing, storeMode } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';
import {
  type CliProcess,
  createExternalStores,
  type ExternalStores,
  freePort,
  killAllChildren,
  login,
  makeTempDir,
  removeTempDirs,
  startCli,
  waitForHttp,
} from './helpers/process.js';

const ADMIN_PASSWORD = 'crash-test-admin-password';
const migrations = loadMigrations();
const allVersions = migrations.map((m) => m.version);
/**
 * The tables each migration creates: they must exist exactly when the migration is recorded. A table
 * a later migration re-creates (0017 rebuilds the observe tables partitioned) belongs to the first.
 */
const created = new Set<string>();
const tablesOf = new Map(
  migrations.map((m) => [
    m.version,
    [...m.sql.matchAll(/create table\s+(?:if not exists\s+)?(\w+)/gi)]
      .map((match) => match[1]!.toLowerCase())
      .filter((table) => !created.has(table) && created.add(table)),
  ]),
);

interface Target {
  env: Record<string, string>;
  base: string;
  /** Runs `fn` on the store while no server holds it. */
  inspect<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T>;
}

describe.skipIf(servicesMissing)(`crash recovery (${storeMode})`, () => {
  let external: ExternalStores | undefined;

  afterEach(async () => {
    await killAllChildren();
    await external?.drop();
    external = undefined;
    removeTempDirs();
  });

  async function createTarget(): Promise<Target> {
    const dataDir = makeTempDir('platform-crash-');
    const port = await freePort();
    const env: Record<string, string> = {
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_PORT: String(port),
      PLATFORM_HOST: '127.0.0.1',
      // The origin the clients below use: cookie-authenticated writes must come from it.
      PLATFORM_PUBLIC_URL: `http://127.0.0.1:${port}`,
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PLATFORM_LOG_LEVEL: 'info',
    };
    if (storeMode === 'postgres') {
      external = await createExternalStores();
      Object.assign(env, external.env);
    }
    const databaseUrl = external?.databaseUrl;
    return {
      env,
      base: `http://127.0.0.1:${port}`,
      inspect: async (fn) => {
        const handle = databaseUrl
          ? await openPostgres({ url: databaseUrl, poolSize: 1 })
          : await openEmbeddedDb({ data_dir: dataDir, database_pool_size: 1 }, { command: 'test' });
        try {
          return await fn(handle.db);
        } finally {
          await handle.close();
          // Never two servers, and none left behind once nobody uses the data directory.
          if (!databaseUrl) expect(runningPostmaster(path.join(dataDir, 'postgres'))).toBeUndefined();
        }
      },
    };
  }

  /** Migrations recorded, and whether each one's tables exist (all or nothing). */
  async function migrationState(db: Kysely<Database>) {
    const exists = await sql<{
      ok: boolean;
    }>`select to_regclass('schema_migrations') is not null as ok`.execute(db);
    const applied = exists.rows[0]?.ok
      ? (
          await sql<{ version: string }>`select version from schema_migrations order by version`.execute(db)
        ).rows.map((r) => r.version)
      : [];
    const partial: string[] = [];
    for (const [version, tables] of tablesOf) {
      const recorded = applied.includes(version);
      for (const table of tables) {
        const r = await sql<{ ok: boolean }>`select to_regclass(${table}) is not null as ok`.execute(db);
        if (r.rows[0]?.ok !== recorded)
          partial.push(`${version}: table ${table} ${recorded ? 'missing' : 'present'}`);
      }
    }
    return { applied, partial };
  }

  async function startServer(target: Target): Promise<CliProcess> {
    const server = startCli(['serve'], target.env);
    await waitForHttp(`${target.base}/readyz`, server, { timeoutMs: 90_000 });
    return server;
  }

  async function stopServer(server: CliProcess): Promise<void> {
    server.signal('SIGTERM');
    const exit = await server.waitForExit(30_000);
    expect(exit, server.describe()).toEqual({ code: 0, signal: null });
  }

  it('SIGKILL during start-up migrations, three times, then a clean start', async () => {
    const target = await createTarget();
    // The kill is timed from the run's first "applying migration" line.
    const kills = [
      { at: '100 ms after the first migration line', delayMs: 100 },
      { at: 'the first migration line', delayMs: 0 },
      { at: '300 ms after the first migration line', delayMs: 300 },
    ];
    const landed: string[] = [];
    const appliedAtKill: number[] = [];
    for (const kill of kills) {
      const server = startCli(['serve'], target.env);
      // Migrations already done (an earlier kill landed late) → the server gets as far as listening.
      const reached = await server.waitUntil(
        (output) =>
          (/applying migration \d{4}_\w+/.test(output) && 'migrating') ||
          (/platform listening/.test(output) && 'listening'),
        'a migration line',
        90_000,
      );
      if (kill.delayMs > 0) await new Promise((r) => setTimeout(r, kill.delayMs));
      await server.kill();
      expect(server.hasExited).toBe(true);
      const state = await target.inspect(migrationState);
      expect(state.partial, `half-applied migration after a kill at ${kill.at}`).toEqual([]);
      expect(state.applied, 'applied migrations are a prefix of the list').toEqual(
        allVersions.slice(0, state.applied.length),
      );
      appliedAtKill.push(state.applied.length);
      landed.push(`${kill.at} (${reached}): ${state.applied.length}/${allVersions.length} applied`);
    }
    console.log(`[crash ${storeMode}] kills landed: ${landed.join('; ')}`);
    // The first kill comes while the first few migrations are being applied: some are still pending.
    expect(appliedAtKill[0]).toBeLessThan(allVersions.length);

    const server = await startServer(target);
    const ready = await fetch(`${target.base}/readyz`);
    expect(ready.status).toBe(200);
    const session = await login(target.base, 'admin', ADMIN_PASSWORD);
    expect(session.status).toBe(200);
    const me = await fetch(`${target.base}/api/auth/me`, { headers: { cookie: session.cookie! } });
    expect(me.status).toBe(200);
    await stopServer(server);

    const final = await target.inspect(async (db) => ({
      ...(await migrationState(db)),
      rows: await sql<{ version: string }>`select version from schema_migrations`.execute(db),
      roles: await db.selectFrom('roles').select('name').orderBy('name').execute(),
      permissions: await db.selectFrom('permissions').select('name').execute(),
      admins: await db.selectFrom('users').select('name').execute(),
    }));
    expect(final.applied).toEqual(allVersions);
    expect(final.rows.rows, 'every migration recorded exactly once').toHaveLength(allVersions.length);
    expect(final.partial).toEqual([]);
    expect(final.roles.map((r) => r.name)).toEqual(['admin', 'agent', 'developer', 'ops', 'viewer']);
    expect(final.permissions).toHaveLength(13);
    expect(final.admins).toEqual([{ name: 'admin' }]);
  }, 300_000);

  it('SIGKILL during a burst of writes keeps every acknowledged write', async () => {
    const target = await createTarget();
    let server = await startServer(target);
    const session = await login(target.base, 'admin', ADMIN_PASSWORD);
    expect(session.status).toBe(200);

    const acknowledged: { id: string; token: string }[] = [];
    const refused: string[] = [];
    let broken = 0;
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        try {
          const res = await fetch(`${target.base}/api/tokens`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', cookie: session.cookie!, origin: target.base },
            body: JSON.stringify({ name: `burst-${w}-${i}` }),
          });
          // Acknowledged = a 201 with its body: only then does the client know the id.
          if (res.status === 201) {
            const body = (await res.json()) as { id: string; token: string };
            acknowledged.push({ id: body.id, token: body.token });
          } else refused.push(`${res.status} ${await res.text()}`);
        } catch {
          broken++; // the connection died with the process: not acknowledged
          if (server.hasExited) return;
        }
      }
    };
    const inFlight = 8;
    const workers = Array.from({ length: inFlight }, (_, w) => worker(w));
    const killAfter = 40;
    try {
      const deadline = Date.now() + 60_000;
      while (acknowledged.length < killAfter && Date.now() < deadline && !server.hasExited)
        await new Promise((r) => setTimeout(r, 5));
      expect(acknowledged.length, server.describe()).toBeGreaterThanOrEqual(killAfter);
      server.signal('SIGKILL');
      await server.waitForExit(10_000);
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    console.log(
      `[crash ${storeMode}] burst: ${acknowledged.length} acknowledged, ${broken} cut off by the kill, ${refused.length} refused`,
    );
    expect(refused).toEqual([]);
    expect(broken, 'the kill landed while requests were in flight').toBeGreaterThan(0);

    server = await startServer(target);
    const again = await login(target.base, 'admin', ADMIN_PASSWORD);
    expect(again.status).toBe(200);
    // The token list pages (50 by default): follow the cursor to see every token.
    const listed = new Set<string>();
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : '?limit=200';
      const list = await fetch(`${target.base}/api/tokens${query}`, { headers: { cookie: again.cookie! } });
      expect(list.status).toBe(200);
      const page = (await list.json()) as { items: { id: string }[]; next_cursor: string | null };
      for (const item of page.items) listed.add(item.id);
      cursor = page.next_cursor;
    } while (cursor);
    const lost = acknowledged.filter((t) => !listed.has(t.id));
    expect(lost, 'acknowledged tokens missing after restart').toEqual([]);
    for (const { token } of acknowledged) {
      const me = await fetch(`${target.base}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      await me.arrayBuffer();
    }
    await stopServer(server);

    // Each acknowledged write committed together with its audit row.
    const audited = await target.inspect((db) =>
      db
        .selectFrom('audit_log')
        .select('resource_id')
        .where('action', '=', 'token.create')
        .where(
          'resource_id',
          'in',
          acknowledged.map((t) => t.id),
        )
        .execute(),
    );
    expect(audited).toHaveLength(acknowledged.length);
  }, 300_000);

  it('SIGKILL during a push: after the restart the ref is the old or the new commit, the repository is intact, a new push works', async () => {
    const target = await createTarget();
    let server = await startServer(target);
    const session = await login(target.base, 'admin', ADMIN_PASSWORD);
    const api = (method: string, url: string, body?: unknown) =>
      fetch(`${target.base}${url}`, {
        method,
        headers: {
          'content-type': 'application/json',
          cookie: session.cookie!,
          'sec-fetch-site': 'same-origin',
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    const created = await api('POST', '/api/projects', { name: 'crashpush' });
    expect(created.status, await created.clone().text()).toBe(201);
    const tokenRes = await api('POST', '/api/tokens', { name: 'push' });
    expect(tokenRes.status).toBe(201);
    const { token } = (await tokenRes.json()) as { token: string };
    const url = authUrl(target.base, 'admin', token, '/admin/crashpush.git');

    const work = tempDir('platform-crash-push-');
    try {
      await gitOk(['init', '-q', work.dir]);
      writeFileSync(path.join(work.dir, 'a.txt'), 'first\n');
      await gitOk(['add', '.'], { cwd: work.dir });
      await gitOk(['commit', '-qm', 'first'], { cwd: work.dir });
      await gitOk(['push', '-q', url, 'HEAD:refs/heads/main'], { cwd: work.dir });
      const first = (await gitOk(['rev-parse', 'HEAD'], { cwd: work.dir })).trim();
      // A second push large enough to be in flight when the kill lands (incompressible bytes).
      writeFileSync(path.join(work.dir, 'big.bin'), randomBytes(24 * 1024 * 1024));
      await gitOk(['add', '.'], { cwd: work.dir });
      await gitOk(['commit', '-qm', 'big'], { cwd: work.dir });
      const second = (await gitOk(['rev-parse', 'HEAD'], { cwd: work.dir })).trim();
      const push = git(['push', url, 'HEAD:refs/heads/main'], { cwd: work.dir });
      await new Promise((r) => setTimeout(r, 300));
      server.signal('SIGKILL');
      await server.waitForExit(10_000);
      const cut = await push;
      console.log(`[crash ${storeMode}] push during the kill: exit ${cut.code}`);

      server = await startServer(target);
      const remote = await git(['ls-remote', url, 'refs/heads/main']);
      expect(remote.code, remote.stderr).toBe(0);
      const head = remote.stdout.split('\t')[0];
      // Acknowledged (exit 0) → the new commit; otherwise the old one or the new one, nothing else.
      if (cut.code === 0) expect(head).toBe(second);
      else expect([first, second]).toContain(head);
      const again = await git(['push', url, 'HEAD:refs/heads/main'], { cwd: work.dir });
      expect(again.code, again.stderr).toBe(0);
      const after = await git(['ls-remote', url, 'refs/heads/main']);
      expect(after.stdout.split('\t')[0]).toBe(second);
      const clone = path.join(work.dir, 'clone');
      await gitOk(['clone', '-q', url, clone]);
      expect((await gitOk(['fsck', '--full'], { cwd: clone })).includes('error')).toBe(false);
      await stopServer(server);
      // The inspection checks that no PostgreSQL of the data directory is left running.
      const rows = await target.inspect((db) => db.selectFrom('projects').select('name').execute());
      expect(rows.map((r) => r.name)).toEqual(['crashpush']);
    } finally {
      work.cleanup();
    }
  }, 300_000);
});
