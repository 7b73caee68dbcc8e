import path from 'node:path';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { ProjectsService } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import { browseRoutes, RepoBrowser } from './browse.js';
import { installHooks } from './hooks.js';
import { lfsRoutes } from './lfs.js';
import { lfsLockRoutes } from './lfs-locks.js';
import { pushReplies } from './push-replies.js';
import { removeStaleIncoming } from './quarantine.js';
import { smartHttpRoutes } from './smart-http.js';

export function createGitModule(
  ctx: ModuleContext,
  deps: { projects: ProjectsService; rbac: RbacService },
): PlatformModule<RepoBrowser> {
  const { projects, rbac } = deps;
  const hooksDir = path.join(ctx.config.data_dir, 'git-hooks');
  const smartHttp = smartHttpRoutes({
    db: ctx.drivers.db.db,
    projects,
    rbac,
    events: ctx.events,
    log: ctx.log,
    hooksDir,
    bodyLimit: ctx.config.git_body_limit_bytes,
    // The pipeline module subscribes to `push.received` (emitted after these listeners) itself.
    onPush: [],
    replies: pushReplies,
    publicUrl: ctx.config.public_url,
  });
  const browser = new RepoBrowser(projects);
  return {
    name: 'git',
    service: browser,
    routes: [
      ...smartHttp.routes,
      ...browseRoutes(browser),
      ...lfsRoutes({
        db: ctx.drivers.db.db,
        projects,
        rbac,
        objects: ctx.drivers.objects,
        publicUrl: ctx.config.public_url,
        maxObjectSize: ctx.config.git_body_limit_bytes,
      }),
      ...lfsLockRoutes({ db: ctx.drivers.db.db, projects, rbac }),
    ],
    start: async () => {
      await installHooks(ctx.config.data_dir);
      await removeStaleIncoming(path.join(ctx.config.data_dir, 'repos'), ctx.log);
    },
    stop: () => smartHttp.drain(),
    settle: () => smartHttp.drain(),
  };
}
