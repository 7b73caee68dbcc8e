/**
 * The server-running lock (core/running.ts) survives the loss of its connection: killed by
 * pg_terminate_backend (as a database restart would), it is taken again on a new connection, so a
 * maintenance command (`secrets rotate-key`) keeps being refused while the server runs, and allowed
 * once it stops.
 *
 * Embedded store only: the advisory lock is per database, and the postgres project's tests share
 * one database (schemas per test), where holding it would refuse other tests' key rotations.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdServerRunningLock, ServerRunningError, whileNoServerRuns } from '../src/core/running.js';
import type { DbHandle } from '../src/store/index.js';
import { createTestStore, servicesMissing, storeMode, type TestStore } from './helpers/app.js';
import { eventually } from './helpers/wait.js';

describe.skipIf(servicesMissing || storeMode !== 'embedded')('server-running lock', () => {
  let store: TestStore;
  let server: DbHandle;
  let cli: DbHandle;

  beforeAll(async () => {
    store = await createTestStore();
    server = await store.openDb();
    cli = await store.openDb();
  });
  afterAll(async () => {
    await server?.close();
    await cli?.close();
    await store?.drop();
  });

  /** Backends of this database holding the lock in shared mode (the servers). */
  const holders = async () =>
    (
      await sql<{ pid: number }>`select pid from pg_locks where locktype = 'advisory' and mode = 'ShareLock'
        and database = (select oid from pg_database where datname = current_database())`.execute(cli.db)
    ).rows.map((r) => r.pid);

  it('is taken again after its connection is killed; maintenance is refused until the server releases it', async () => {
    const lost: unknown[] = [];
    let retaken = 0;
    const lock = await holdServerRunningLock(server.db, {
      checkMs: 50,
      onLost: (err) => lost.push(err),
      onRetaken: () => {
        retaken += 1;
      },
    });
    const rotate = () => whileNoServerRuns(cli.db, 'secrets rotate-key', async () => 'rotated');
    await expect(rotate()).rejects.toBeInstanceOf(ServerRunningError);
    const [first] = await holders();
    expect(first).toBeTypeOf('number');

    await sql`select pg_terminate_backend(${first}::int)`.execute(cli.db);
    await eventually(() => (retaken > 0 ? true : undefined), 20_000, 'the lock taken again');
    expect(lost.length).toBeGreaterThan(0);
    const [second] = await holders();
    expect(second).toBeTypeOf('number');
    expect(second).not.toBe(first);
    await expect(rotate()).rejects.toBeInstanceOf(ServerRunningError);

    await lock.release();
    expect(await holders()).toEqual([]);
    await expect(rotate()).resolves.toBe('rotated');
  }, 60_000);
});
