import { sql } from 'kysely';
import type { Db } from '../store/db.js';
import { AppError } from './errors.js';

/**
 * "A platform server is running against this database": every `platform serve` holds this advisory
 * lock in shared mode on a connection of its own for as long as it runs (PostgreSQL releases it when
 * the process or its connection dies, so a crash leaves nothing behind). Maintenance that must not run
 * beside a server — `secrets rotate-key`: servers keep the master key in memory and would go on
 * sealing with the old one — takes it in exclusive mode, which fails while any server holds it; a
 * server starting meanwhile waits until the maintenance is done.
 */
const SERVER_RUNNING_LOCK = sql`hashtext('platform.server-running')`;

export class ServerRunningError extends AppError {
  constructor(what: string) {
    super(
      409,
      'conflict',
      `${what} refused: a platform server is running against this database. Stop every \`platform serve\` instance first (they hold the master key in memory and would keep using the old one), then run it again.`,
    );
    this.name = 'ServerRunningError';
  }
}

/** Held by `serve` from before the master key is loaded until shutdown. */
export function holdServerRunningLock(db: Db): Promise<{ release(): Promise<void> }> {
  return new Promise((resolveHeld, rejectHeld) => {
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const held = db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock_shared(${SERVER_RUNNING_LOCK})`.execute(conn);
      resolveHeld({
        release: async () => {
          stop();
          await held.catch(() => {});
        },
      });
      await stopped;
      await sql`select pg_advisory_unlock_shared(${SERVER_RUNNING_LOCK})`.execute(conn);
    });
    held.catch(rejectHeld);
  });
}

/** Runs `fn` on one connection holding the lock exclusively; ServerRunningError while a server runs. */
export async function whileNoServerRuns<T>(db: Db, what: string, fn: (db: Db) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    const { rows } = await sql<{
      locked: boolean;
    }>`select pg_try_advisory_lock(${SERVER_RUNNING_LOCK}) as locked`.execute(conn);
    if (!rows[0]?.locked) throw new ServerRunningError(what);
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock(${SERVER_RUNNING_LOCK})`.execute(conn);
    }
  });
}
