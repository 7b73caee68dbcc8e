import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { RbacService } from '../rbac/index.js';
import { ProtectionRulesService } from './protection-rules.js';
import { projectRoutes } from './routes.js';
import { ProjectsService } from './service.js';

export function createProjectsModule(
  ctx: ModuleContext,
  deps: { rbac: RbacService },
): PlatformModule<ProjectsService> {
  const service = new ProjectsService(ctx.drivers.db.db, deps.rbac, {
    dataDir: ctx.config.data_dir,
    publicUrl: ctx.config.public_url,
  });
  const rules = new ProtectionRulesService(ctx.drivers.db.db);
  return { name: 'projects', service, routes: projectRoutes(service, rules, deps.rbac) };
}
