import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { ProjectsService } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import { mergeRequestRoutes } from './routes.js';
import { MergeRequestsService } from './service.js';

export function createMergeRequestsModule(
  ctx: ModuleContext,
  deps: { projects: ProjectsService; rbac: RbacService },
): PlatformModule<MergeRequestsService> {
  const service = new MergeRequestsService(ctx.drivers.db.db, deps.projects, deps.rbac, ctx.events, ctx.log);
  // Pushes to a source branch update the MR head; pushes to a target may merge MRs.
  const unsubscribe = ctx.events.on('push.received', (e) => service.onPush(e));
  return {
    name: 'merge-requests',
    service,
    routes: mergeRequestRoutes(service),
    stop: async () => {
      unsubscribe();
    },
  };
}
