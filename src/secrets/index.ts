export {
  open as openSealed,
  SecretDecryptionError,
  seal,
  secretAad,
  secretsKey,
} from './crypto.js';
export { createSecretsModule } from './module.js';
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
