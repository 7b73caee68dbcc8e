import path from 'node:path';
import { sql } from 'kysely';
import type { Config } from '../config.js';
import { BroadcastCache, MemoryCache, ValkeyCache } from './cache/index.js';
import type { Cache } from './cache/types.js';
import { type DbHandle, openPostgres } from './db.js';
import { EMBEDDED_DATABASE, EmbeddedPostgres, embeddedConnection, runningPostmaster } from './embedded.js';
import { acquireDataDirLock, DataDirLockedError, lockHolder } from './lock.js';
import { FsObjectStore, type ObjectStore, S3ObjectStore } from './objects/index.js';
import { PostgresPubSub, type PubSub, ValkeyPubSub } from './pubsub/index.js';

export type { Cache } from './cache/types.js';
export {
  type Db,
  type DbHandle,
  type DbOrTx,
  openPostgres,
  type Tx,
  transaction,
} from './db.js';
export {
  EMBEDDED_DATABASE,
  EmbeddedPostgres,
  EmbeddedPostgresError,
  embeddedConnection,
  runningPostmaster,
  stopPostmaster,
} from './embedded.js';
export { acquireDataDirLock, DataDirLockedError, type LockHolder, lockHolder } from './lock.js';
export { migrate, pendingMigrations } from './migrate.js';
export { FsObjectStore } from './objects/index.js';
export type { ObjectStore } from './objects/types.js';
export type { PubSub } from './pubsub/types.js';

export interface Drivers {
  db: DbHandle;
  cache: Cache;
  pubsub: PubSub;
  objects: ObjectStore;
}

export interface OpenDriversOptions {
  /**
   * Who opens the stores. `serve` takes the data-directory lock (a second server refuses to start).
   * Any other command (the CLI) uses the running server's embedded database when a server holds the
   * lock, and otherwise takes the lock and starts the embedded database itself.
   */
  command?: string;
  /** Progress lines of the embedded server (initdb, start). */
  log?: (message: string) => void;
}

export function embeddedDir(config: Pick<Config, 'data_dir'>): string {
  return path.resolve(config.data_dir, 'postgres');
}

/**
 * The embedded database for `command`: the PostgreSQL server in `<data_dir>/postgres`, started by
 * this process (which then holds the data-directory lock until close), or — for a CLI command while
 * `serve` runs — the running server's, through its socket.
 */
export async function openEmbeddedDb(
  config: Pick<Config, 'data_dir' | 'database_pool_size'>,
  options: OpenDriversOptions = {},
): Promise<DbHandle> {
  const command = options.command ?? 'serve';
  const dir = embeddedDir(config);
  const holder = lockHolder(config.data_dir);
  if (holder && command !== 'serve' && holder.command === 'serve' && runningPostmaster(dir)) {
    return openPostgres({
      kind: 'embedded',
      connection: embeddedConnection(dir, EMBEDDED_DATABASE),
      poolSize: 2,
    });
  }
  if (holder) throw new DataDirLockedError(path.resolve(config.data_dir), holder);
  const lock = acquireDataDirLock(config.data_dir, command);
  let server: EmbeddedPostgres;
  try {
    server = await EmbeddedPostgres.start({ dir, log: options.log });
  } catch (err) {
    lock.release();
    throw err;
  }
  return openPostgres({
    kind: 'embedded',
    connection: server.connection(),
    poolSize: config.database_pool_size,
    onClose: async () => {
      try {
        await server.stop();
      } finally {
        lock.release();
      }
    },
  });
}

/**
 * Opens the store drivers the config selects: PostgreSQL or the embedded server, Valkey or
 * in-process cache (pub/sub then over PostgreSQL LISTEN/NOTIFY, so CLI commands and other instances
 * reach the server), S3 or the data directory. `signingKey` signs the filesystem store's presigned URLs.
 */
export async function openDrivers(
  config: Config,
  signingKey: Buffer,
  options: OpenDriversOptions = {},
): Promise<Drivers> {
  let lock: ReturnType<typeof acquireDataDirLock> | undefined;
  let db: DbHandle;
  if (config.database_url) {
    // The data directory (repositories, objects, keys) is still one server's.
    if ((options.command ?? 'serve') === 'serve') lock = acquireDataDirLock(config.data_dir, 'serve');
    try {
      db = await openPostgres({
        url: config.database_url,
        poolSize: config.database_pool_size,
        onClose: async () => lock?.release(),
      });
    } catch (err) {
      lock?.release();
      throw err;
    }
  } else {
    db = await openEmbeddedDb(config, options);
  }
  let cache: Cache;
  let pubsub: PubSub;
  if (config.valkey_url) {
    cache = new ValkeyCache(config.valkey_url, { keyPrefix: config.valkey_key_prefix });
    pubsub = new ValkeyPubSub(config.valkey_url, { channelPrefix: config.valkey_key_prefix });
  } else {
    pubsub = postgresPubSub(db);
    const broadcast = new BroadcastCache(new MemoryCache(), pubsub);
    await broadcast.start();
    cache = broadcast;
  }
  const objects: ObjectStore = config.s3_bucket
    ? new S3ObjectStore({
        bucket: config.s3_bucket,
        region: config.s3_region,
        endpoint: config.s3_endpoint,
        accessKeyId: config.s3_access_key_id,
        secretAccessKey: config.s3_secret_access_key,
        forcePathStyle: config.s3_force_path_style,
      })
    : new FsObjectStore({
        root: path.join(config.data_dir, 'objects'),
        publicUrl: config.public_url,
        signingKey,
      });
  return { db, cache, pubsub, objects };
}

/** Pub/sub over the database itself (no Valkey). */
export function postgresPubSub(db: DbHandle): PostgresPubSub {
  return new PostgresPubSub({
    notify: async (channel, payload) => {
      await sql`select pg_notify(${channel}, ${payload})`.execute(db.db);
    },
    connect: () => db.connect(),
  });
}

export async function closeDrivers(drivers: Drivers): Promise<void> {
  await Promise.allSettled([drivers.pubsub.close(), drivers.cache.close(), drivers.objects.close()]);
  await drivers.db.close();
}
