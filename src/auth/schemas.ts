import { z } from 'zod';
import { PERMISSIONS } from '../core/permissions.js';

/**
 * The user name rule: URL path segments and git remotes, so no spaces or slashes. Case is kept as
 * given (as Gitea does); uniqueness and every lookup ignore it (`users_name_lower_key`).
 */
export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const userNameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(USER_NAME, 'letters, digits, ".", "-" and "_", starting with a letter or digit, at most 63');

export const userTypes = ['human', 'agent', 'service_account'] as const;
export type UserType = (typeof userTypes)[number];

const timestamp = z.string().describe('ISO 8601');

export const UserSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    email: z.string(),
    display_name: z.string().nullable(),
    user_type: z.enum(userTypes),
    is_active: z.boolean(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'User' });

export const UserListSchema = z.object({ items: z.array(UserSchema), next_cursor: z.string().nullable() });

export const LoginSchema = z.object({ user: UserSchema, expires_at: timestamp }).meta({ id: 'LoginResult' });

export const MeSchema = z
  .object({
    user: UserSchema,
    roles: z.array(z.object({ name: z.string(), project_id: z.uuid().nullable() })),
    permissions: z.array(z.enum(PERMISSIONS)),
    auth: z.object({
      method: z.enum(['session', 'token', 'basic']),
      token_id: z.uuid().optional(),
      scopes: z.array(z.string()).nullable().optional(),
      project_id: z.uuid().nullable().optional(),
    }),
  })
  .meta({ id: 'Me' });

/** A token's metadata: the raw token is never in it. */
export const TokenSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    token_prefix: z.string(),
    scopes: z.array(z.string()).nullable(),
    project_id: z.uuid().nullable(),
    last_used_at: timestamp.nullable(),
    expires_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'Token' });

/** The answer to a token's creation: the only time the raw token is shown. */
export const TokenCreatedSchema = TokenSchema.extend({
  token: z.string().describe('the raw token; shown once, store it now'),
}).meta({ id: 'TokenCreated' });

export const TokenListSchema = z.object({ items: z.array(TokenSchema), next_cursor: z.string().nullable() });

/** What services answer: timestamps are Dates until the serializer writes them as ISO strings. */
type Dated<T> = {
  [K in keyof T]: K extends `${string}_at` ? (null extends T[K] ? Date | null : Date) : T[K];
};
export type UserView = Dated<z.infer<typeof UserSchema>>;
export type TokenView = Dated<z.infer<typeof TokenSchema>>;
