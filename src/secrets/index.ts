import type { ModuleContext, PlatformModule } from '../app.js';
import { secretsRoutes } from './routes.js';
import { SecretsService } from './service.js';

export {
  open as openSealed,
  SecretDecryptionError,
  seal,
  secretAad,
  secretsKey,
} from './crypto.js';
export {
  type Rekey,
  type RotationProgress,
  rotateSecretsKey,
  type SealedColumn,
  SecretResolutionError,
  SecretsService,
  SecretValueTooLargeError,
  scopeAllows,
} from './service.js';
export type { PutSecretInput, SecretConsumer, SecretMetadata, SecretScope } from './types.js';

/** The secrets module: its routes, and `SecretsService` as `platform.service('secrets')`. */
export function createSecretsModule(ctx: ModuleContext): PlatformModule & { service: SecretsService } {
  const service = new SecretsService(ctx.drivers.db.db, ctx.masterKey);
  return { name: 'secrets', routes: secretsRoutes(service), service };
}
