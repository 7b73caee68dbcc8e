import { z } from 'zod';
import { secretScopes } from '../store/schema.js';

/** What the API shows of a secret: never the value or its ciphertext. */
export const SecretMetadataSchema = z
  .object({
    name: z.string(),
    project_id: z.uuid().nullable().describe('null: a global secret'),
    scope: z.enum(secretScopes),
    version: z.number().int(),
    created_at: z.string().describe('ISO 8601'),
    updated_at: z.string().describe('ISO 8601'),
    created_by: z.uuid().nullable(),
    updated_by: z.uuid().nullable(),
  })
  .meta({ id: 'SecretMetadata' });

export const SecretMetadataListSchema = z.object({
  items: z.array(SecretMetadataSchema),
  next_cursor: z.string().nullable(),
});
