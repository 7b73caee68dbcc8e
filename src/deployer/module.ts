import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { Db } from '../store/db.js';

/**
 * The deployer's public service. For now it only owns the `deployments` table, which publishing
 * pipelines write through `recordPublication`; rolling deployments out comes with the full deployer.
 */
export class DeployerService {
  constructor(private readonly db: Db) {}

  /** The environments of a project with what should run there. */
  async list(projectId: string) {
    return this.db
      .selectFrom('deployments')
      .selectAll()
      .where('project_id', '=', projectId)
      .orderBy('environment')
      .execute();
  }
}

/** The deployer: owner of `deployments` (no routes or loops yet). */
export function createDeployerModule(ctx: ModuleContext): PlatformModule<DeployerService> {
  return {
    name: 'deployer',
    service: new DeployerService(ctx.drivers.db.db),
    routes: [],
  };
}
