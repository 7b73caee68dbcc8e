import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { Db } from './db.js';

/** Arbitrary constant: the advisory lock every instance takes while applying migrations. */
const MIGRATION_LOCK_KEY = 7_231_904_551;

export const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Migration {
  version: string;
  sql: string;
}

export function loadMigrations(dir = migrationsDir): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: f.replace(/\.sql$/, ''), sql: readFileSync(path.join(dir, f), 'utf8') }));
}

/**
 * Applies pending migrations, each in its own transaction holding a transaction-scoped advisory
 * lock, so concurrent instances apply each migration exactly once and a crash mid-way leaves either
 * the whole migration or none of it. Returns the versions this call applied.
 */
export async function migrate(db: Db, onProgress: (message: string) => void = () => {}): Promise<string[]> {
  const migrations = loadMigrations();
  const applied: string[] = [];
  for (const migration of migrations) {
    const didApply = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`.execute(trx);
      await sql`create table if not exists schema_migrations (
        version text primary key,
        applied_at timestamptz not null default now()
      )`.execute(trx);
      const done = await sql<{
        version: string;
      }>`select version from schema_migrations where version = ${migration.version}`.execute(trx);
      if (done.rows.length > 0) return false;
      onProgress(`applying migration ${migration.version}`);
      await sql.raw(migration.sql).execute(trx);
      await sql`insert into schema_migrations (version) values (${migration.version})`.execute(trx);
      return true;
    });
    if (didApply) applied.push(migration.version);
  }
  return applied;
}

export async function pendingMigrations(db: Db): Promise<string[]> {
  const all = loadMigrations().map((m) => m.version);
  const exists = await sql<{
    ok: boolean;
  }>`select to_regclass('schema_migrations') is not null as ok`.execute(db);
  if (!exists.rows[0]?.ok) return all;
  const done = await sql<{ version: string }>`select version from schema_migrations`.execute(db);
  const set = new Set(done.rows.map((r) => r.version));
  return all.filter((v) => !set.has(v));
}
