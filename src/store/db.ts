import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresDialect,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  sql,
  type Transaction,
} from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
/** Either the database or an open transaction: what query functions accept. */
export type DbOrTx = Db | Tx;

export interface DbHandle {
  readonly kind: 'pglite' | 'postgres';
  readonly db: Db;
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

/**
 * PGlite is one connection. Kysely asks for a connection per query and keeps it for the whole of a
 * transaction, so a FIFO lock around the connection serialises transactions: no interleaving of
 * statements from two transactions, and waiting callers are served in order (no starvation).
 * Inside a transaction, code must use the transaction object, never `db` (that would wait forever).
 */
class PGliteConnection implements DatabaseConnection {
  constructor(private readonly pglite: PGlite) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (query.parameters.length === 0) {
      // Simple protocol: allows multi-statement scripts (migrations); the last result is returned.
      const results = await this.pglite.exec(query.sql);
      const last = results[results.length - 1];
      return { rows: (last?.rows ?? []) as R[], numAffectedRows: BigInt(last?.affectedRows ?? 0) };
    }
    const result = await this.pglite.query<R>(query.sql, query.parameters as unknown[]);
    return { rows: result.rows, numAffectedRows: BigInt(result.affectedRows ?? 0) };
  }

  // biome-ignore lint/correctness/useYield: streaming is not supported on PGlite; nothing uses it.
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streamQuery is not supported on PGlite');
  }
}

class PGliteDriver implements Driver {
  private queue: Promise<void> = Promise.resolve();
  private readonly connection: PGliteConnection;
  private waiting = 0;
  private busy = false;

  constructor(readonly pglite: PGlite) {
    this.connection = new PGliteConnection(pglite);
  }

  async init(): Promise<void> {
    await this.pglite.waitReady;
  }

  private releaseCurrent: (() => void) | undefined;

  async acquireConnection(): Promise<DatabaseConnection> {
    this.waiting++;
    const previous = this.queue;
    let release!: () => void;
    this.queue = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    this.waiting--;
    this.busy = true;
    this.releaseCurrent = release;
    return this.connection;
  }

  async releaseConnection(): Promise<void> {
    const release = this.releaseCurrent;
    this.releaseCurrent = undefined;
    this.busy = false;
    release?.();
  }

  async beginTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery({ sql: 'begin', parameters: [] } as unknown as CompiledQuery);
  }
  async commitTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery({ sql: 'commit', parameters: [] } as unknown as CompiledQuery);
  }
  async rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery({ sql: 'rollback', parameters: [] } as unknown as CompiledQuery);
  }
  async destroy(): Promise<void> {
    await this.queue;
    if (!this.pglite.closed) await this.pglite.close();
  }

  stats() {
    return { total: 1, idle: this.busy ? 0 : 1, waiting: this.waiting };
  }
}

class PGliteDialect implements Dialect {
  constructor(readonly driver: PGliteDriver) {}
  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver() {
    return this.driver;
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
}

export interface PGliteOptions {
  /** Directory of the database files; undefined → in memory (tests). */
  dataDir?: string;
  /** A data directory tarball (from `dumpPGlite`) to start from instead of initdb (tests). */
  loadDataDir?: Blob;
}

export async function openPGlite(options: PGliteOptions = {}): Promise<DbHandle> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const pglite = new PGlite(options.dataDir, {
    parsers: { 20: int8 },
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
  });
  const driver = new PGliteDriver(pglite);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(driver) });
  await sql`select 1`.execute(db);
  const handle: PGliteHandle = {
    kind: 'pglite',
    pglite,
    db,
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close: () => db.destroy(),
    stats: () => driver.stats(),
  };
  return handle;
}

/** The data directory of a PGlite database as a tarball (test fixtures: migrate once, copy per test). */
export async function dumpPGlite(handle: DbHandle): Promise<Blob> {
  if (handle.kind !== 'pglite') throw new Error('not a PGlite handle');
  return (handle as PGliteHandle).pglite.dumpDataDir('none');
}

interface PGliteHandle extends DbHandle {
  pglite: PGlite;
}

export interface PostgresOptions {
  url: string;
  poolSize?: number;
  /** Sets search_path on every connection (tests isolate themselves in a schema). */
  schema?: string;
}

export async function openPostgres(options: PostgresOptions): Promise<DbHandle> {
  const types = {
    getTypeParser: (oid: number, format?: 'text' | 'binary') =>
      oid === 20 ? int8 : pg.types.getTypeParser(oid, format as 'text'),
  };
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    types: types as pg.CustomTypesConfig,
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy();
    throw new Error(`cannot connect to PostgreSQL: ${(err as Error).message}`);
  }
  return {
    kind: 'postgres',
    db,
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close: () => db.destroy(),
    stats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}
