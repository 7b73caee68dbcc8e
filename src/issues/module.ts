import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { RbacService } from '../rbac/index.js';
import { issueRoutes } from './routes.js';
import { IssuesService } from './service.js';

/** The issues module: issue and comment routes, and `IssuesService` as `platform.services.issues`. */
export function createIssuesModule(
  ctx: ModuleContext,
  deps: { rbac: RbacService },
): PlatformModule<IssuesService> {
  const service = new IssuesService(ctx.drivers.db.db, deps.rbac, ctx.events, {
    publicUrl: ctx.config.public_url,
  });
  return { name: 'issues', service, routes: issueRoutes(service) };
}
