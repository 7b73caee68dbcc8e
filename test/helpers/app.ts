import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { expect } from 'vitest';
import { buildApp, type Platform } from '../../src/app.js';
import { bootstrapAdmin } from '../../src/auth/index.js';
import { type Config, loadConfig } from '../../src/config.js';
import { BroadcastCache, type Cache, MemoryCache, ValkeyCache } from '../../src/store/cache/index.js';
import {
  type DbHandle,
  type Drivers,
  embeddedConnection,
  FsObjectStore,
  migrate,
  type ObjectStore,
  openPostgres,
  postgresPubSub,
} from '../../src/store/index.js';
import { ValkeyPubSub } from '../../src/store/pubsub/index.js';
import { freePort } from './process.js';
import { replyProblem } from './responses.js';
import { embeddedTestDir, TEMPLATE_DATABASE, testDatabaseUrl, testValkeyUrl } from './services.js';

export type StoreMode = 'embedded' | 'postgres';
/** Which stores the integration suite runs on: the vitest project sets it (see vitest.config.ts). */
export const storeMode: StoreMode = process.env.PLATFORM_TEST_STORE === 'postgres' ? 'postgres' : 'embedded';
export const servicesMissing =
  storeMode === 'postgres' &&
  !(
    process.env.PLATFORM_TEST_POSTGRES_AVAILABLE === '1' && process.env.PLATFORM_TEST_VALKEY_AVAILABLE === '1'
  );

export const ADMIN_PASSWORD = 'admin-password-for-tests';

export interface TestStore {
  mode: StoreMode;
  /** Postgres schema of this test (shared by every instance opened on it). */
  schema?: string;
  /** Valkey key prefix of this test. */
  keyPrefix: string;
  openDb(): Promise<DbHandle>;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated, isolated store: a new database copied from the migrated template on the bundled
 * PostgreSQL (embedded), or a new schema on the test PostgreSQL.
 */
export async function createTestStore(mode: StoreMode = storeMode): Promise<TestStore> {
  const keyPrefix = `test:${randomBytes(6).toString('hex')}:`;
  if (mode === 'embedded') {
    const dir = embeddedTestDir;
    if (!dir) throw new Error('the embedded test PostgreSQL is not running (test/global-setup.ts starts it)');
    const database = `t_${randomBytes(6).toString('hex')}`;
    await withEmbeddedAdmin(dir, (c) => c.query(`create database ${database} template ${TEMPLATE_DATABASE}`));
    return {
      mode,
      keyPrefix,
      openDb: () =>
        openPostgres({ kind: 'embedded', connection: embeddedConnection(dir, database), poolSize: 5 }),
      drop: async () => {
        await withEmbeddedAdmin(dir, (c) => c.query(`drop database if exists ${database} with (force)`));
      },
    };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testDatabaseUrl });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  let migrated = false;
  return {
    mode,
    schema,
    keyPrefix,
    openDb: async () => {
      const handle = await openPostgres({ url: testDatabaseUrl, schema, poolSize: 5 });
      if (!migrated) {
        await migrate(handle.db);
        migrated = true;
      }
      return handle;
    },
    drop: async () => {
      const c = new pg.Client({ connectionString: testDatabaseUrl });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    },
  };
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | number | undefined>;
  text: string;
}

export interface RequestOptions {
  body?: unknown;
  token?: string;
  cookie?: string;
  headers?: Record<string, string>;
  /** Skip the one-audit-row-per-mutation check (concurrent bursts). */
  noAuditCheck?: boolean;
}

export interface TestPlatform {
  platform: Platform;
  /** With `listen`: the base URL the platform serves on. */
  baseUrl: string;
  config: Config;
  store: TestStore;
  adminId: string;
  adminToken: string;
  logLines: string[];
  // biome-ignore lint/suspicious/noExplicitAny: tests read response bodies loosely; assertions check them.
  request<T = any>(method: string, url: string, options?: RequestOptions): Promise<ApiResponse<T>>;
  /** Creates a human user, optionally with global roles, and returns a bearer token for it. */
  createUser(
    name: string,
    roles?: string[],
    options?: { userType?: string },
  ): Promise<{ id: string; token: string; password: string }>;
  auditCount(): Promise<number>;
  close(): Promise<void>;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface TestPlatformOptions {
  store?: TestStore;
  config?: Record<string, string>;
  /** Do not create the admin (and its token). */
  bare?: boolean;
  /** Listen on a free loopback port that is also the public URL (git clients, presigned URLs). */
  listen?: boolean;
  /** Another object store than the filesystem store in the data directory (S3 on s3rver); closed with the platform. */
  objects?: ObjectStore;
}

/**
 * A platform on a fresh store with the admin bootstrapped and an admin token. `request` asserts that
 * every successful mutation writes exactly one audit row, so the whole suite checks that rule.
 */
export async function createTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const store = options.store ?? (await createTestStore());
  const dataDir = mkdtempSync(path.join(tmpdir(), 'platform-test-'));
  const port = options.listen ? await freePort() : 0;
  const config = loadConfig({
    env: {
      PLATFORM_ENV: 'test',
      PLATFORM_DATA_DIR: dataDir,
      PLATFORM_LOG_LEVEL: 'info',
      PLATFORM_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PLATFORM_LOGIN_RATE_LIMIT: '1000',
      ...(options.listen
        ? { PLATFORM_PORT: String(port), PLATFORM_PUBLIC_URL: `http://127.0.0.1:${port}` }
        : {}),
      ...options.config,
    },
  });
  const logLines: string[] = [];
  const logger = pino({ level: config.log_level }, { write: (line: string) => void logLines.push(line) });
  const db = await store.openDb();
  const redis = store.mode === 'postgres';
  // Embedded: pub/sub over the database (LISTEN/NOTIFY) and an in-process cache whose deletions are
  // broadcast on it, as `platform serve` has them without Valkey.
  const pubsub = redis
    ? new ValkeyPubSub(testValkeyUrl, { channelPrefix: store.keyPrefix })
    : postgresPubSub(db);
  let cache: Cache;
  if (redis) cache = new ValkeyCache(testValkeyUrl, { keyPrefix: store.keyPrefix });
  else {
    const broadcast = new BroadcastCache(new MemoryCache(), pubsub);
    await broadcast.start();
    cache = broadcast;
  }
  const drivers: Drivers = {
    db,
    cache,
    pubsub,
    objects:
      options.objects ??
      new FsObjectStore({
        root: path.join(dataDir, 'objects'),
        publicUrl: config.public_url,
        signingKey: randomBytes(32),
      }),
  };
  await bootstrapAdmin(db.db, {
    name: config.admin_name,
    email: config.admin_email,
    password: ADMIN_PASSWORD,
  });
  const platform = await buildApp(config, drivers, { logger });
  // Every reply this platform sends (inject or real HTTP) is checked against its route's schema.
  const replyProblems: string[] = [];
  platform.registry.observe((reply) => {
    const problem = replyProblem(reply);
    if (problem) replyProblems.push(problem);
  });
  const failOnReplyProblems = () => {
    const problems = replyProblems.splice(0);
    if (problems.length) expect.fail(`response contract violated:\n${problems.join('\n')}`);
  };
  if (options.listen) await platform.fastify.listen({ port, host: '127.0.0.1' });
  const admin = await db.db
    .selectFrom('users')
    .select('id')
    .where('name', '=', config.admin_name)
    .executeTakeFirstOrThrow();

  const auditCount = async () => {
    const r = await sql<{ n: number }>`select count(*)::int as n from audit_log`.execute(db.db);
    return r.rows[0]!.n;
  };

  const request = async <T>(method: string, url: string, o: RequestOptions = {}): Promise<ApiResponse<T>> => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.cookie) {
      headers.cookie = o.cookie;
      // As a browser on the platform's own page sends it (cookie mutations need a same-origin Origin).
      if (!('origin' in headers) && !('sec-fetch-site' in headers)) headers.origin = config.public_url;
    }
    const check = MUTATING.has(method) && !o.noAuditCheck;
    // Background work of earlier requests (post-push audit rows…) must not count for this one.
    if (check) await platform.settle();
    const before = check ? await auditCount() : 0;
    const res = await platform.fastify.inject({
      method: method as 'GET',
      url,
      headers,
      ...(o.body !== undefined ? { payload: o.body as string } : {}),
    });
    let body: unknown = res.body;
    try {
      body = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      // not JSON
    }
    failOnReplyProblems();
    if (check && res.statusCode < 300) {
      await platform.settle();
      const after = await auditCount();
      expect(after - before, `${method} ${url} must write exactly one audit row`).toBe(1);
    }
    return { status: res.statusCode, body: body as T, headers: res.headers, text: res.body };
  };

  let adminToken = '';
  if (!options.bare) {
    const created = await platform.auth.createTokenForUser(
      { id: admin.id, name: 'admin', ip: null },
      config.admin_name,
      { name: 'test-admin' },
    );
    adminToken = created.token;
  }

  const createUser: TestPlatform['createUser'] = async (name, roles = [], o = {}) => {
    const password = `pw-${name}-${randomBytes(4).toString('hex')}`;
    const res = await request<{ id: string }>('POST', '/api/users', {
      token: adminToken,
      body: { name, email: `${name}@example.test`, password, user_type: o.userType },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    for (const role of roles) {
      const bind = await request('POST', `/api/admin/users/${res.body.id}/roles`, {
        token: adminToken,
        body: { role },
      });
      expect(bind.status, JSON.stringify(bind.body)).toBe(201);
    }
    const token = await platform.auth.createTokenForUser({ id: admin.id, name: 'admin', ip: null }, name, {
      name: 'test',
    });
    return { id: res.body.id, token: token.token, password };
  };

  return {
    platform,
    baseUrl: config.public_url,
    config,
    store,
    adminId: admin.id,
    adminToken,
    logLines,
    request,
    createUser,
    auditCount,
    close: async () => {
      await platform.close();
      await Promise.allSettled([drivers.pubsub.close(), drivers.cache.close(), drivers.objects.close()]);
      await db.close();
      if (!options.store) await store.drop();
      rmSync(dataDir, { recursive: true, force: true });
      // Replies not sent through `request` (fetch, git clients) are checked here, after the cleanup.
      failOnReplyProblems();
    },
  };
}

/** An empty (unmigrated) database on the embedded test server, for the migration tests. */
export async function createEmptyEmbeddedDb(): Promise<{ handle: DbHandle; drop(): Promise<void> }> {
  const dir = embeddedTestDir;
  if (!dir) throw new Error('the embedded test PostgreSQL is not running (test/global-setup.ts starts it)');
  const database = `m_${randomBytes(6).toString('hex')}`;
  await withEmbeddedAdmin(dir, (c) => c.query(`create database ${database}`));
  const handle = await openPostgres({ kind: 'embedded', connection: embeddedConnection(dir, database) });
  return {
    handle,
    drop: async () => {
      await handle.close();
      await withEmbeddedAdmin(dir, (c) => c.query(`drop database if exists ${database} with (force)`));
    },
  };
}

async function withEmbeddedAdmin<T>(dir: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(embeddedConnection(dir, 'postgres'));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Inserts a project row directly (project CRUD arrives with the git/projects issue). */
export async function insertProject(
  t: TestPlatform,
  input: { name: string; ownerId?: string; visibility?: 'private' | 'internal' | 'public' },
): Promise<string> {
  const row = await t.platform.drivers.db.db
    .insertInto('projects')
    .values({
      owner_id: input.ownerId ?? t.adminId,
      name: input.name,
      visibility: input.visibility ?? 'private',
      repo_path: `repos/${input.name}.git`,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

export { eventually } from './wait.js';
