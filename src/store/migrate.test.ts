import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmptyEmbeddedDb } from '../../test/helpers/app.js';
import { postgresAvailable, testDatabaseUrl } from '../../test/helpers/services.js';
import { type Db, type DbHandle, openPostgres } from './db.js';
import { loadMigrations, migrate, pendingMigrations } from './migrate.js';

const versions = loadMigrations().map((m) => m.version);

async function recorded(db: Db): Promise<string[]> {
  const r = await sql<{ version: string }>`select version from schema_migrations order by version`.execute(
    db,
  );
  return r.rows.map((row) => row.version);
}

interface ColumnRow {
  table_name: string;
  column_name: string;
  data_type: string;
  is_nullable: string;
  column_default: string | null;
}

/** Tables and columns of the current schema, comparable across the embedded and the external PostgreSQL. */
async function columns(db: Db): Promise<ColumnRow[]> {
  const r = await sql<ColumnRow>`
    select table_name, column_name, data_type, is_nullable, column_default
    from information_schema.columns
    where table_schema = current_schema()
    order by table_name, column_name`.execute(db);
  return r.rows;
}

/** Constraint and index names with their definitions (schema name stripped). */
async function constraintsAndIndexes(db: Db): Promise<string[]> {
  const constraints = await sql<{ d: string }>`
    select c.conrelid::regclass::text || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid) as d
    from pg_constraint c join pg_namespace n on n.oid = c.connamespace
    -- PostgreSQL 18 lists NOT NULL as constraints (contype n); older servers do not. The columns
    -- comparison covers nullability on every version.
    where n.nspname = current_schema() and c.contype <> 'n'`.execute(db);
  const indexes = await sql<{ d: string }>`
    select tablename || ' ' || indexname || ' ' || indexdef as d
    from pg_indexes where schemaname = current_schema()`.execute(db);
  const schema = (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]!.s;
  // Objects of extensions live in `public` (pg_trgm's operator class); pg_get_indexdef qualifies
  // them only when `public` is not on the connection's search_path, which differs between the two.
  return [...constraints.rows, ...indexes.rows]
    .map((r) => r.d.replaceAll(`${schema}.`, '').replaceAll('public.', ''))
    .sort();
}

async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: testDatabaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const newSchema = async () => {
  const schema = `m_${randomBytes(6).toString('hex')}`;
  await withClient((c) => c.query(`create schema ${schema}`));
  return schema;
};
const dropSchema = (schema: string) => withClient((c) => c.query(`drop schema if exists ${schema} cascade`));

/** One empty database on the embedded test server for the whole file. */
let handle: DbHandle;
let dropEmpty: (() => Promise<void>) | undefined;
let pendingBefore: string[];
let firstRun: string[];
const progress: string[] = [];
beforeAll(async () => {
  const empty = await createEmptyEmbeddedDb();
  handle = empty.handle;
  dropEmpty = empty.drop;
  pendingBefore = await pendingMigrations(handle.db);
  firstRun = await migrate(handle.db, (m) => progress.push(m));
});
afterAll(() => dropEmpty?.());

describe('migrations on the embedded PostgreSQL', () => {
  it('the migration files are numbered, ordered and unique', () => {
    expect(versions.length).toBeGreaterThan(5);
    expect([...versions].sort()).toEqual(versions);
    expect(new Set(versions.map((v) => v.slice(0, 4))).size).toBe(versions.length);
  });

  it('the first run applies every migration in order and reports progress for each', () => {
    expect(firstRun).toEqual(versions);
    expect(progress).toEqual(versions.map((v) => `applying migration ${v}`));
  });

  it('records every version in schema_migrations', async () => {
    expect(await recorded(handle.db)).toEqual(versions);
    expect(await pendingMigrations(handle.db)).toEqual([]);
  });

  it('a second run applies nothing and changes nothing', async () => {
    const before = await columns(handle.db);
    const progressAgain: string[] = [];
    expect(await migrate(handle.db, (m) => progressAgain.push(m))).toEqual([]);
    expect(progressAgain).toEqual([]);
    expect(await recorded(handle.db)).toEqual(versions);
    expect(await columns(handle.db)).toEqual(before);
  });

  it('a fresh database has every migration pending', () => {
    expect(pendingBefore).toEqual(versions);
  });

  it('creates the tables the schema promises', async () => {
    const tables = new Set((await columns(handle.db)).map((c) => c.table_name));
    for (const table of [
      'users',
      'roles',
      'api_tokens',
      'audit_log',
      'scheduler_leases',
      'schema_migrations',
    ]) {
      expect(tables.has(table), table).toBe(true);
    }
  });
});

describe.skipIf(!postgresAvailable)('migrations on PostgreSQL', () => {
  const schemas: string[] = [];
  const handles: DbHandle[] = [];
  const open = async (schema: string) => {
    const h = await openPostgres({ url: testDatabaseUrl, schema, poolSize: 2 });
    handles.push(h);
    return h;
  };
  afterAll(async () => {
    await Promise.allSettled(handles.map((h) => h.close()));
    await Promise.allSettled(schemas.map(dropSchema));
  });

  it('3 concurrent migrate() calls on separate connections apply each version exactly once', async () => {
    const schema = await newSchema();
    schemas.push(schema);
    const instances = await Promise.all([open(schema), open(schema), open(schema)]);
    const applied = await Promise.all(instances.map((h) => migrate(h.db)));
    expect(applied.flat().sort()).toEqual(versions);
    // Migrations are applied in order even when instances take turns.
    for (const list of applied) expect([...list].sort()).toEqual(list);
    expect(await recorded(instances[0]!.db)).toEqual(versions);
    for (const h of instances) expect(await migrate(h.db)).toEqual([]);
  });

  it('the schema is identical on the embedded and the external PostgreSQL: tables, columns, constraints, indexes', async () => {
    const schema = await newSchema();
    schemas.push(schema);
    const postgres = await open(schema);
    await migrate(postgres.db);
    const [a, b] = [await columns(handle.db), await columns(postgres.db)];
    expect(a.length).toBeGreaterThan(100);
    expect(b).toEqual(a);
    const [c, d] = [await constraintsAndIndexes(handle.db), await constraintsAndIndexes(postgres.db)];
    expect(c.length).toBeGreaterThan(50);
    expect(d).toEqual(c);
  });
});
