import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmptyEmbeddedDb } from '../../test/helpers/app.js';
import type { DbHandle } from '../store/index.js';
import { loadMigrations } from '../store/migrate.js';

const VERSION = '0014_pipeline_numbers';

/** Migration 0014 on a database that already has pipelines: they are numbered per project, in created order. */
describe('migration 0014: pipeline numbers', () => {
  let handle: DbHandle;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const empty = await createEmptyEmbeddedDb();
    handle = empty.handle;
    drop = empty.drop;
    for (const m of loadMigrations().filter((m) => m.version < VERSION))
      await sql.raw(m.sql).execute(handle.db);
  });
  afterAll(async () => {
    await drop?.();
  });

  it('backfills numbers per project in created order and the counters after them', async () => {
    const owner = await sql<{ id: string }>`
      insert into users (name, email) values ('o', 'o@example.test') returning id`.execute(handle.db);
    const ownerId = owner.rows[0]!.id;
    const project = async (name: string) =>
      (
        await sql<{ id: string }>`
          insert into projects (owner_id, name, repo_path) values (${ownerId}, ${name}, ${`${name}.git`})
          returning id`.execute(handle.db)
      ).rows[0]!.id;
    const a = await project('a');
    const b = await project('b');
    const empty = await project('c');
    const pipeline = async (projectId: string, minutesAgo: number) =>
      (
        await sql<{ id: string }>`
          insert into pipelines (project_id, trigger, git_ref, commit_sha, created_at)
          values (${projectId}, 'api', 'refs/heads/main', ${'a'.repeat(40)}, now() - make_interval(mins => ${minutesAgo}))
          returning id`.execute(handle.db)
      ).rows[0]!.id;
    const a2 = await pipeline(a, 5);
    const a1 = await pipeline(a, 10);
    const a3 = await pipeline(a, 1);
    const b1 = await pipeline(b, 3);

    await sql.raw(loadMigrations().find((m) => m.version === VERSION)!.sql).execute(handle.db);

    const numbers = await sql<{ id: string; number: number }>`select id, number from pipelines`.execute(
      handle.db,
    );
    expect(Object.fromEntries(numbers.rows.map((r) => [r.id, r.number]))).toEqual({
      [a1]: 1,
      [a2]: 2,
      [a3]: 3,
      [b1]: 1,
    });
    const counters = await sql<{ id: string; next: number }>`
      select id, next_pipeline_number as next from projects`.execute(handle.db);
    expect(Object.fromEntries(counters.rows.map((r) => [r.id, r.next]))).toEqual({
      [a]: 4,
      [b]: 2,
      [empty]: 1,
    });
    // Numbers are unique per project and required.
    await expect(
      sql`insert into pipelines (project_id, number, trigger, git_ref, commit_sha)
          values (${a}, 3, 'api', 'refs/heads/main', ${'a'.repeat(40)})`.execute(handle.db),
    ).rejects.toThrow(/pipelines_project_id_number_key/);
    await expect(
      sql`insert into pipelines (project_id, trigger, git_ref, commit_sha)
          values (${a}, 'api', 'refs/heads/main', ${'a'.repeat(40)})`.execute(handle.db),
    ).rejects.toThrow(/null/);
  });
});
