import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import { PERMISSIONS } from '../core/permissions.js';
import { SESSION_COOKIE } from './credentials.js';
import { AUTH_REASONS } from './reasons.js';
import {
  LoginSchema,
  MeSchema,
  TokenCreatedSchema,
  TokenListSchema,
  UserListSchema,
  UserSchema,
  userNameSchema,
  userTypes,
} from './schemas.js';
import type { AuthService } from './service.js';

const permissionEnum = z.enum(PERMISSIONS);
const password = z.string().min(8, 'at least 8 characters').max(1024);
const userTypeEnum = z.enum(userTypes);

function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSeconds}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

export function authRoutes(auth: AuthService, options: { secureCookies: boolean }): AnyRouteDef[] {
  const { sessions, users, tokens } = auth;
  return [
    route({
      method: 'POST',
      url: '/api/auth/login',
      summary: 'Sign in with name (any case) and password; sets the session cookie',
      tags: ['auth'],
      access: 'public',
      body: z.object({ name: z.string().min(1).max(200), password: z.string().min(1).max(1024) }),
      response: LoginSchema,
      reasons: [AUTH_REASONS.invalidCredentials, AUTH_REASONS.rateLimited],
      handler: async ({ body, req, reply }) => {
        const result = await sessions.login(body, {
          ip: req.ip,
          userAgent: req.headers['user-agent'] ?? null,
        });
        const maxAge = Math.floor((result.expiresAt.getTime() - Date.now()) / 1000);
        reply.header('set-cookie', sessionCookie(result.token, maxAge, options.secureCookies));
        return { user: result.user, expires_at: result.expiresAt };
      },
    }),
    route({
      method: 'POST',
      url: '/api/auth/logout',
      summary: 'End the current session and clear its cookie',
      tags: ['auth'],
      access: 'authenticated',
      status: 204,
      handler: async ({ requirePrincipal, actor, reply }) => {
        await sessions.logout(requirePrincipal(), actor);
        reply.header('set-cookie', sessionCookie('', 0, options.secureCookies));
        return undefined;
      },
    }),
    route({
      method: 'GET',
      url: '/api/auth/me',
      summary: 'The signed-in user, their roles and effective global permissions',
      tags: ['auth'],
      access: 'authenticated',
      response: MeSchema,
      handler: async ({ requirePrincipal }) => sessions.me(requirePrincipal()),
    }),
    route({
      method: 'GET',
      url: '/api/users',
      summary: 'List users by name (`q` matches name or e-mail, ignoring case)',
      tags: ['users'],
      access: { permission: 'admin:users' },
      query: paginationQuery.extend({
        q: z.string().max(200).optional(),
        active: z.enum(['true', 'false']).optional(),
      }),
      response: UserListSchema,
      handler: async ({ query }) =>
        users.listUsers({
          ...query,
          active: query.active === undefined ? undefined : query.active === 'true',
        }),
    }),
    route({
      method: 'POST',
      url: '/api/users',
      summary: 'Create a user (the name keeps its case; names are unique ignoring case)',
      tags: ['users'],
      access: { permission: 'admin:users' },
      status: 201,
      body: z.object({
        name: userNameSchema,
        email: z.email().max(320),
        password: password.optional(),
        display_name: z.string().max(200).nullish(),
        user_type: userTypeEnum.optional(),
      }),
      response: UserSchema,
      reasons: [AUTH_REASONS.userTaken, AUTH_REASONS.passwordRequired],
      handler: async ({ body, actor }) => users.createUser(actor, body),
    }),
    route({
      method: 'GET',
      url: '/api/users/:id',
      summary: 'A user (yourself, or anyone with admin:users)',
      tags: ['users'],
      access: 'authenticated',
      params: uuidParam,
      response: UserSchema,
      handler: async ({ params, requirePrincipal, authorize }) => {
        if (requirePrincipal().userId !== params.id) await authorize('admin:users');
        return users.getUser(params.id);
      },
    }),
    route({
      method: 'PATCH',
      url: '/api/users/:id',
      summary: 'Update a user; you may update your own profile and password (old_password required)',
      tags: ['users'],
      // Your own profile, e-mail and password: a full credential; another user: admin:users.
      access: { self: 'account', selfParam: 'id' },
      params: uuidParam,
      body: z.object({
        display_name: z.string().max(200).nullish(),
        email: z.email().max(320).optional(),
        password: password.optional(),
        old_password: z.string().max(1024).optional(),
        is_active: z.boolean().optional(),
      }),
      response: UserSchema,
      reasons: [
        AUTH_REASONS.oldPasswordRequired,
        AUTH_REASONS.wrongOldPassword,
        AUTH_REASONS.selfDeactivation,
        AUTH_REASONS.rateLimited,
      ],
      handler: async ({ params, body, actor, requirePrincipal, authorize, can }) => {
        const isSelf = requirePrincipal().userId === params.id;
        if (!isSelf) await authorize('admin:users');
        return users.updateUser(actor, params.id, body, await can('admin:users'));
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/users/:id',
      summary: 'Deactivate a user (ends their sessions and tokens)',
      tags: ['users'],
      access: { permission: 'admin:users' },
      status: 204,
      params: uuidParam,
      reasons: [AUTH_REASONS.selfDeactivation],
      handler: async ({ params, actor }) => users.deactivateUser(actor, params.id),
    }),
    route({
      method: 'GET',
      url: '/api/tokens',
      summary:
        'Your API tokens, newest first (metadata only; a scoped or project-restricted token sees only itself)',
      tags: ['tokens'],
      access: 'authenticated',
      query: paginationQuery,
      response: TokenListSchema,
      handler: async ({ query, requirePrincipal }) => tokens.listTokens(requirePrincipal(), query),
    }),
    route({
      method: 'POST',
      url: '/api/tokens',
      summary:
        'Create an API token; the raw token is answered once as `token` (a token creates only tokens within its own expiry, scopes and project)',
      tags: ['tokens'],
      access: 'authenticated',
      status: 201,
      body: z.object({
        name: z.string().min(1).max(100),
        scopes: z
          .array(permissionEnum)
          .max(PERMISSIONS.length * 2)
          .nullish(),
        project_id: z.uuid().nullish(),
        expires_at: z.coerce.date().nullish(),
      }),
      response: TokenCreatedSchema,
      reasons: [AUTH_REASONS.expiryInPast, AUTH_REASONS.tokenExceedsParent],
      handler: async ({ body, actor, requirePrincipal }) =>
        tokens.createToken(actor, requirePrincipal(), body),
    }),
    route({
      method: 'DELETE',
      url: '/api/tokens/:id',
      summary: 'Revoke one of your tokens (any token with admin:users)',
      tags: ['tokens'],
      access: 'authenticated',
      status: 204,
      params: uuidParam,
      reasons: [AUTH_REASONS.tokenAlreadyRevoked],
      handler: async ({ params, actor, requirePrincipal, can }) =>
        tokens.revokeToken(actor, requirePrincipal(), params.id, await can('admin:users')),
    }),
  ];
}
