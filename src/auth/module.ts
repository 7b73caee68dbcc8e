import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import { buildRbacService, type RbacService } from '../rbac/index.js';
import type { Cache } from '../store/cache/types.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import { authRoutes } from './routes.js';
import { AuthService } from './service.js';

type AuthConfig = Pick<
  Config,
  'permission_cache_ttl_seconds' | 'session_ttl_seconds' | 'login_rate_limit' | 'login_rate_window_seconds'
>;

function buildAuthService(config: AuthConfig, db: Db, cache: Cache, rbac: RbacService, log: Logger) {
  return new AuthService(
    db,
    cache,
    rbac,
    {
      sessionTtlSeconds: config.session_ttl_seconds,
      rateLimit: config.login_rate_limit,
      rateWindowSeconds: config.login_rate_window_seconds,
    },
    log,
  );
}

/** RBAC and authentication for the CLI commands that work on the store without a server. */
export function createIdentity(
  config: AuthConfig,
  stores: { db: Db; cache: Cache; pubsub: PubSub },
  log: Logger,
): { rbac: RbacService; auth: AuthService } {
  const rbac = buildRbacService(config, stores, log);
  return { rbac, auth: buildAuthService(config, stores.db, stores.cache, rbac, log) };
}

/** Sign-in, sessions, users and API tokens; `AuthService` authenticates every request. */
export function createAuthModule(
  ctx: ModuleContext,
  deps: { rbac: RbacService },
): PlatformModule<AuthService> {
  const service = buildAuthService(ctx.config, ctx.drivers.db.db, ctx.drivers.cache, deps.rbac, ctx.log);
  return {
    name: 'auth',
    service,
    routes: authRoutes(service, { secureCookies: ctx.config.secure_cookies }),
    start: async () => {
      ctx.scheduler.add({
        name: 'auth.purge-expired-sessions',
        intervalMs: 10 * 60_000,
        run: async () => {
          const purged = await service.purgeExpiredSessions();
          if (purged > 0) ctx.log.info({ purged }, 'expired sessions purged');
        },
      });
    },
  };
}
