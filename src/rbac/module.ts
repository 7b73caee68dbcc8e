import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { Cache } from '../store/cache/types.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import { rbacRoutes } from './routes.js';
import { RbacService } from './service.js';

/** RBAC from the config: the server (below) and the CLI commands build it the same way. */
export function buildRbacService(
  config: Pick<Config, 'permission_cache_ttl_seconds'>,
  stores: { db: Db; cache: Cache; pubsub: PubSub },
  log: Logger,
): RbacService {
  return new RbacService(stores.db, stores.cache, stores.pubsub, config.permission_cache_ttl_seconds, log);
}

/** Roles, bindings and delegations; `RbacService` is the one `authorize` every module is given. */
export function createRbacModule(ctx: ModuleContext): PlatformModule<RbacService> {
  const { db, cache, pubsub } = ctx.drivers;
  const service = buildRbacService(ctx.config, { db: db.db, cache, pubsub }, ctx.log);
  return {
    name: 'rbac',
    service,
    routes: rbacRoutes(service),
    start: () => service.start(),
    stop: () => service.stop(),
  };
}
