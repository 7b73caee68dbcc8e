import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { ProjectsService } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import type { CommitChecks } from './context.js';
import { mergeRequestRoutes } from './routes.js';
import { MergeRequestsService } from './service.js';

/** The scheduler loop completing merges interrupted by a crash (one instance at a time). */
export const MERGE_RECOVERY_LOOP = 'mr.merge-recovery';

export function createMergeRequestsModule(
  ctx: ModuleContext,
  deps: { projects: ProjectsService; rbac: RbacService; checks: CommitChecks },
): PlatformModule<MergeRequestsService> {
  const service = new MergeRequestsService({
    db: ctx.drivers.db.db,
    projects: deps.projects,
    rbac: deps.rbac,
    events: ctx.events,
    log: ctx.log,
    checks: deps.checks,
  });
  // Pushes to a source branch update the MR head; pushes to a target may merge MRs.
  const unsubscribe = ctx.events.on('push.received', (e) => service.onPush(e));
  return {
    name: 'merge-requests',
    service,
    routes: mergeRequestRoutes(service),
    start: async () => {
      ctx.scheduler.add({
        name: MERGE_RECOVERY_LOOP,
        intervalMs: 5_000,
        run: async () => {
          await service.recoverMerges();
        },
      });
    },
    stop: async () => {
      unsubscribe();
    },
  };
}
