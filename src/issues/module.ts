import type { ModuleContext, PlatformModule } from '../app.js';
import { issueRoutes } from './routes.js';
import { IssuesService } from './service.js';

/** The issues module: issue and comment routes, and `IssuesService` as `platform.service('issues')`. */
export function createIssuesModule(ctx: ModuleContext): PlatformModule & { service: IssuesService } {
  const service = new IssuesService(ctx.drivers.db.db, ctx.rbac, ctx.events, {
    publicUrl: ctx.config.public_url,
  });
  return { name: 'issues', service, routes: issueRoutes(service) };
}
