import type { z } from 'zod';
import type { Actor } from '../core/http.js';
import type { SecretScope } from '../store/schema.js';
import type { SecretMetadataSchema } from './schemas.js';

export { type SecretScope, secretScopes } from '../store/schema.js';

export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/;
/** Largest value in bytes (UTF-8): 64 KiB. */
export const MAX_SECRET_VALUE_BYTES = 64 * 1024;

/** What the API shows of a secret: never the value or its ciphertext. */
export type SecretMetadata = z.infer<typeof SecretMetadataSchema>;

export interface PutSecretInput {
  name: string;
  value: string;
  /** Default on create: 'all'; omitted on update: the scope stays as it is. */
  scope?: SecretScope | undefined;
}

/** Who asks for a value: recorded in the `secret.resolve` audit row. */
export interface SecretConsumer {
  /** e.g. 'pipeline', 'agent_session', 'deployment'. */
  kind: string;
  id: string;
  /** The user behind the consumer, when there is one; default: the consumer itself as a system actor. */
  actor?: Actor;
}
