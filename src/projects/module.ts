import type { ModuleContext, PlatformModule } from '../app.js';
import { projectRoutes } from './routes.js';
import { ProjectsService } from './service.js';

export function createProjectsModule(ctx: ModuleContext): PlatformModule & { service: ProjectsService } {
  const service = new ProjectsService(ctx.drivers.db.db, ctx.rbac, {
    dataDir: ctx.config.data_dir,
    publicUrl: ctx.config.public_url,
  });
  return { name: 'projects', service, routes: projectRoutes(service, ctx.rbac, ctx.drivers.db.db) };
}
