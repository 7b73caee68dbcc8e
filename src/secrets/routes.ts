import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, route } from '../core/http.js';
import { SECRETS_REASONS } from './reasons.js';
import { SecretMetadataListSchema, SecretMetadataSchema } from './schemas.js';
import type { SecretsService } from './service.js';
import { SECRET_NAME, secretScopes } from './types.js';

const secretName = z
  .string()
  .regex(SECRET_NAME, 'letters, digits and "_", not starting with a digit, at most 255 characters');

/**
 * The value is only type-checked here: its size limit (64 KiB of UTF-8) is the service's, answered
 * 413 with a message that does not echo the value.
 */
const putBody = z.object({
  name: secretName,
  value: z.string(),
  scope: z.enum(secretScopes).optional(),
});

const metadata = SecretMetadataSchema;
const page = SecretMetadataListSchema;

/** 64 KiB of value JSON-escaped (up to 6 bytes a byte for control characters) plus the rest. */
const BODY_LIMIT = 512 * 1024;

export function secretsRoutes(secrets: SecretsService): AnyRouteDef[] {
  const projectParams = z.object({ id: z.uuid() });
  // Path names are only length-checked: params are parsed before authorization, and a name that
  // cannot exist should answer 403/404 like any other, not 400 to a caller without access.
  const pathName = z.string().min(1).max(255);
  const projectSecretParams = z.object({ id: z.uuid(), name: pathName });
  // Global secrets: secret:write / secret:read bound globally (only admin holds them by default).
  const globalWrite = { permission: 'secret:write', description: 'global secret:write (admin)' } as const;
  const globalRead = { permission: 'secret:read', description: 'global secret:read (admin, ops)' } as const;
  return [
    route({
      method: 'POST',
      url: '/api/projects/:id/secrets',
      summary: 'Create a project secret (201) or update it to a new version (200); answers metadata only',
      tags: ['secrets'],
      access: { permission: 'secret:write', projectParam: 'id' },
      params: projectParams,
      body: putBody,
      bodyLimit: BODY_LIMIT,
      status: 201,
      response: metadata,
      reasons: [SECRETS_REASONS.valueTooLarge],
      raw: true,
      produces: {
        status: 201,
        contentType: 'application/json',
        description: 'the secret metadata: 201 when created, 200 when a new version was written',
      },
      handler: async ({ params, body, actor, reply }) => {
        const { created, secret } = await secrets.put(actor, params.id, body);
        return reply.code(created ? 201 : 200).send(secret);
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/secrets',
      summary: 'Metadata of the project secrets (never values)',
      tags: ['secrets'],
      access: { permission: 'secret:read', projectParam: 'id' },
      params: projectParams,
      query: paginationQuery,
      response: page,
      handler: async ({ params, query }) => secrets.list(params.id, query),
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id/secrets/:name',
      summary: 'Delete a project secret',
      tags: ['secrets'],
      access: { permission: 'secret:write', projectParam: 'id' },
      status: 204,
      params: projectSecretParams,
      handler: async ({ params, actor }) => secrets.delete(actor, params.id, params.name),
    }),
    route({
      method: 'POST',
      url: '/api/admin/secrets',
      summary: 'Create a global secret (201) or update it to a new version (200); answers metadata only',
      tags: ['secrets'],
      access: globalWrite,
      body: putBody,
      bodyLimit: BODY_LIMIT,
      status: 201,
      response: metadata,
      reasons: [SECRETS_REASONS.valueTooLarge],
      raw: true,
      produces: {
        status: 201,
        contentType: 'application/json',
        description: 'the secret metadata: 201 when created, 200 when a new version was written',
      },
      handler: async ({ body, actor, reply }) => {
        const { created, secret } = await secrets.put(actor, null, body);
        return reply.code(created ? 201 : 200).send(secret);
      },
    }),
    route({
      method: 'GET',
      url: '/api/admin/secrets',
      summary: 'Metadata of the global secrets (never values)',
      tags: ['secrets'],
      access: globalRead,
      query: paginationQuery,
      response: page,
      handler: async ({ query }) => secrets.list(null, query),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/secrets/:name',
      summary: 'Delete a global secret',
      tags: ['secrets'],
      access: globalWrite,
      status: 204,
      params: z.object({ name: pathName }),
      handler: async ({ params, actor }) => secrets.delete(actor, null, params.name),
    }),
  ];
}
