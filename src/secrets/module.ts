import type { ModuleContext, PlatformModule } from '../core/module.js';
import { secretsRoutes } from './routes.js';
import { SecretsService } from './service.js';

/** The secrets module: its routes, and `SecretsService` as `platform.services.secrets`. */
export function createSecretsModule(ctx: ModuleContext): PlatformModule<SecretsService> {
  const service = new SecretsService(ctx.drivers.db.db, ctx.masterKey);
  return { name: 'secrets', routes: secretsRoutes(service), service };
}
