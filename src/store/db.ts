import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
/** Either the database or an open transaction: what query functions accept. */
export type DbOrTx = Db | Tx;

export interface DbHandle {
  /** `embedded`: the PostgreSQL server the platform runs itself; `postgres`: PLATFORM_DATABASE_URL. */
  readonly kind: 'embedded' | 'postgres';
  readonly db: Db;
  /** A dedicated connection outside the pool (LISTEN for pub/sub); the caller ends it. */
  connect(): Promise<pg.Client>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Pool statistics for /metrics. */
  stats(): { total: number; idle: number; waiting: number };
}

/** The one transaction helper: everything inside `fn` commits or rolls back together. */
export function transaction<T>(db: Db, fn: (trx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}

const int8 = (v: string) => {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
};

export interface PostgresOptions {
  /** A postgres:// URL (PLATFORM_DATABASE_URL) … */
  url?: string;
  /** … or connection settings (the embedded server's socket). */
  connection?: pg.ClientConfig;
  poolSize?: number;
  /** Sets search_path on every connection (tests isolate themselves in a schema). */
  schema?: string;
  kind?: DbHandle['kind'];
  /** Runs after the pool is closed (the embedded server stops, the data-directory lock is released). */
  onClose?: () => Promise<void>;
}

const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? int8 : pg.types.getTypeParser(oid, format as 'text'),
} as pg.CustomTypesConfig;

export async function openPostgres(options: PostgresOptions): Promise<DbHandle> {
  const clientConfig: pg.ClientConfig = {
    ...(options.url ? { connectionString: options.url } : {}),
    ...options.connection,
    types,
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
  };
  const pool = new pg.Pool({
    ...clientConfig,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => {});
  // The pool's own listener covers idle clients only: a checked-out one (a transaction, a held
  // advisory lock) whose server goes away (restart: 57P01) would otherwise emit an unhandled 'error'
  // and end the process. Its query in flight rejects anyway, and the pool drops it on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy();
    await options.onClose?.();
    throw new Error(`cannot connect to PostgreSQL: ${(err as Error).message}`);
  }
  let closing: Promise<void> | undefined;
  return {
    kind: options.kind ?? 'postgres',
    db,
    connect: async () => {
      const client = new pg.Client({ ...clientConfig, connectionTimeoutMillis: 5000 });
      await client.connect();
      return client;
    },
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close: () => {
      closing ??= (async () => {
        try {
          await db.destroy();
        } finally {
          await options.onClose?.();
        }
      })();
      return closing;
    },
    stats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}
