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

/** How often the holding connection is checked (a lock dies with its connection: a database restart). */
const CHECK_MS = 5_000;

export interface ServerRunningLockOptions {
  checkMs?: number;
  /** Told when the lock was lost with its connection and when it is held again. */
  onLost?: (err: unknown) => void;
  onRetaken?: () => void;
}

/**
 * Held by `serve` from before the master key is loaded until shutdown. The first acquisition is
 * awaited (a rotation in progress finishes first); afterwards the holding connection is checked
 * every few seconds, and a lock lost with its connection (the database restarted, the connection
 * was killed) is taken again on a new one, retried until it is back or the server stops.
 */
export function holdServerRunningLock(
  db: Db,
  options: ServerRunningLockOptions = {},
): Promise<{ release(): Promise<void> }> {
  const checkMs = options.checkMs ?? CHECK_MS;
  let released = false;
  let wake!: () => void;
  const stopped = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const pause = (ms: number) =>
    Promise.race([stopped, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
  /** One connection's hold: resolves at release; rejects when the connection fails. */
  const holdOnce = (onHeld: () => void) =>
    db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock_shared(${SERVER_RUNNING_LOCK})`.execute(conn);
      onHeld();
      while (!released) {
        await pause(checkMs);
        if (!released) await sql`select 1`.execute(conn);
      }
      await sql`select pg_advisory_unlock_shared(${SERVER_RUNNING_LOCK})`.execute(conn);
    });
  return new Promise((resolveHeld, rejectHeld) => {
    let first = true;
    const loop = async () => {
      let retryMs = 250;
      while (!released) {
        try {
          await holdOnce(() => {
            retryMs = 250;
            if (first) {
              first = false;
              resolveHeld({ release });
            } else options.onRetaken?.();
          });
        } catch (err) {
          if (first) {
            rejectHeld(err);
            return;
          }
          if (released) return;
          options.onLost?.(err);
          await pause(retryMs);
          retryMs = Math.min(retryMs * 2, 10_000);
        }
      }
    };
    const done = loop();
    const release = async () => {
      released = true;
      wake();
      await done.catch(() => {});
    };
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
