import path from 'node:path';
import type { Config } from '../config.js';
import { MemoryCache, ValkeyCache } from './cache/index.js';
import type { Cache } from './cache/types.js';
import { type DbHandle, openPGlite, openPostgres } from './db.js';
import { FsObjectStore, type ObjectStore, S3ObjectStore } from './objects/index.js';
import { MemoryPubSub, type PubSub, ValkeyPubSub } from './pubsub/index.js';

export type { Cache } from './cache/types.js';
export {
  type Db,
  type DbHandle,
  type DbOrTx,
  dumpPGlite,
  openPGlite,
  openPostgres,
  type Tx,
  transaction,
} from './db.js';
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

/**
 * Opens the store drivers the config selects: PostgreSQL or embedded PGlite, Valkey or in-process,
 * S3 or the data directory. `signingKey` signs the filesystem store's presigned URLs.
 */
export async function openDrivers(config: Config, signingKey: Buffer): Promise<Drivers> {
  const db = config.database_url
    ? await openPostgres({ url: config.database_url, poolSize: config.database_pool_size })
    : await openPGlite({ dataDir: path.join(config.data_dir, 'pglite') });
  const cache: Cache = config.valkey_url
    ? new ValkeyCache(config.valkey_url, { keyPrefix: config.valkey_key_prefix })
    : new MemoryCache();
  const pubsub: PubSub = config.valkey_url
    ? new ValkeyPubSub(config.valkey_url, { channelPrefix: config.valkey_key_prefix })
    : new MemoryPubSub();
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

export async function closeDrivers(drivers: Drivers): Promise<void> {
  await Promise.allSettled([drivers.pubsub.close(), drivers.cache.close(), drivers.objects.close()]);
  await drivers.db.close();
}
