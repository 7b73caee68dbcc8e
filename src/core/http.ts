import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, badRequest, forbidden, notFound, unauthorized } from './errors.js';
import type { Permission } from './permissions.js';

/** Who is calling: resolved from a session cookie, a bearer token or HTTP Basic credentials. */
export interface Principal {
  userId: string;
  userName: string;
  userType: 'human' | 'agent' | 'service_account';
  /** Present when the request authenticated with an API token. */
  token?: { id: string; scopes: string[] | null; projectId: string | null; expiresAt: Date | null };
  /** Present when the request authenticated with a login session. */
  sessionId?: string;
}

/** RBAC provides this; the HTTP layer only calls it (authentication runs earlier, in an onRequest hook). */
export interface AccessControl {
  /**
   * 'allowed', or why not: 'denied' (403) or 'hidden' (the project is not visible to the caller:
   * answered as 404 so private projects are not revealed).
   */
  check(
    principal: Principal | null,
    permission: Permission,
    projectId: string | null,
  ): Promise<AccessDecision>;
}
export type AccessDecision = 'allowed' | 'denied' | 'hidden';

/**
 * Every route declares who may call it; registration without it does not type-check.
 * - `public`: anyone, also anonymous.
 * - `authenticated`: any signed-in principal; the handler narrows further with `ctx.authorize`.
 * - `{ permission }`: a global permission.
 * - `{ permission, projectParam }`: the permission on the project whose id is that path parameter.
 */
export type Access =
  | 'public'
  | 'authenticated'
  | { permission: Permission; projectParam?: string; description?: string }
  | { self: SelfScope; selfParam?: string; description?: string };

/**
 * What a self-service route (the caller's own profile, tokens, notifications) needs from the
 * credential, since a token is an upper bound on everything done with it:
 * - a permission name: a scoped token must carry it (a session or an unscoped token may);
 * - `account`: a full credential only — a login session, a password, or a token with neither
 *   scopes nor a project restriction (changing the e-mail, password, preferences, other tokens).
 * With `selfParam`, the requirement applies when that path parameter is the caller's own user id
 * (the route's handler authorizes acting on others, e.g. with `admin:users`).
 */
export type SelfScope = Permission | 'account';

/** Whether the credential allows a self-service action: see `SelfScope`. */
export function credentialAllows(principal: Principal, scope: SelfScope): boolean {
  const token = principal.token;
  if (!token) return true;
  if (scope === 'account') return token.scopes === null && token.projectId === null;
  return token.scopes === null || token.scopes.includes(scope);
}

export interface Actor {
  id: string | null;
  name: string;
  ip: string | null;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
type Schema = z.ZodType;
type Infer<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteContext<P, Q, B> {
  req: FastifyRequest;
  reply: FastifyReply;
  params: P;
  query: Q;
  body: B;
  principal: Principal | null;
  /** The signed-in principal; throws 401 when anonymous. */
  requirePrincipal(): Principal;
  /** Throws 401/403/404 unless the caller holds the permission (on the project when given). */
  authorize(permission: Permission, projectId?: string | null): Promise<void>;
  /** Non-throwing variant of authorize. */
  can(permission: Permission, projectId?: string | null): Promise<boolean>;
  /** Who to record in the audit log. */
  actor: Actor;
}

export interface RouteDef<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
> {
  method: Method;
  url: string;
  summary: string;
  tags: string[];
  access: Access;
  params?: P;
  query?: Q;
  body?: B;
  /** Success status; default 200, or 204 when the handler returns undefined. */
  status?: number;
  /** Documented response body of the success status. */
  response?: Schema;
  /** The stable refusal reasons (`declareReasons`) this operation may answer with. */
  reasons?: readonly string[];
  /** Request body limit in bytes for this route (default: the API limit). */
  bodyLimit?: number;
  /** Raw routes write the reply themselves (streams, git); the handler returns the reply. */
  raw?: boolean;
  /**
   * What a raw route answers, for the OpenAPI document: the success status (302 for a redirect) and
   * the content type and meaning of its body.
   */
  produces?: { status?: number; contentType?: string; description: string };
  /** Mutating routes that by design write no audit row (e.g. logout of an unknown session). */
  handler(ctx: RouteContext<Infer<P>, Infer<Q>, Infer<B>>): Promise<unknown>;
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds routes of every schema combination.
export type AnyRouteDef = RouteDef<any, any, any>;

/** Identity function that gives the handler its inferred types. */
export function route<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
>(def: RouteDef<P, Q, B>): AnyRouteDef {
  return def as AnyRouteDef;
}

function validationError(where: string, error: z.ZodError): AppError {
  return badRequest(
    `invalid ${where}`,
    error.issues.map((i) => ({
      path: [where, ...i.path.map(String)].join('.'),
      message: i.message,
      code: i.code,
    })),
  );
}

function parse<S extends Schema | undefined>(schema: S, value: unknown, where: string): Infer<S> {
  if (!schema) return undefined as Infer<S>;
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(where, result.error);
  return result.data as Infer<S>;
}

export function clientIp(req: FastifyRequest): string {
  return req.ip;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The registry of every API route: the OpenAPI document and the every-route tests read it. */
export class RouteRegistry {
  readonly routes: AnyRouteDef[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly access: AccessControl,
    private readonly defaultBodyLimit: number,
  ) {}

  register(defs: AnyRouteDef[]): void {
    for (const def of defs) this.add(def);
  }

  private add(def: AnyRouteDef): void {
    if (!def.access) throw new Error(`route ${def.method} ${def.url} declares no access`);
    this.routes.push(def);
    const access = this.access;
    this.app.route({
      method: def.method,
      url: def.url,
      bodyLimit: def.bodyLimit ?? this.defaultBodyLimit,
      handler: async (req, reply) => {
        const principal = req.principal;
        const params = parse(def.params, req.params, 'params');

        const check = async (permission: Permission, projectId: string | null) =>
          access.check(principal, permission, projectId);
        const authorize = async (permission: Permission, projectId: string | null = null) => {
          const decision = await check(permission, projectId);
          if (decision === 'allowed') return;
          if (decision === 'hidden') throw notFound('project');
          if (!principal) throw unauthorized();
          throw forbidden(`permission ${permission} required${projectId ? ' on this project' : ''}`);
        };

        if (def.access === 'authenticated' && !principal) throw unauthorized();
        if (typeof def.access === 'object' && 'self' in def.access) {
          if (!principal) throw unauthorized();
          const { self, selfParam } = def.access;
          const applies = !selfParam || (params as Record<string, unknown>)[selfParam] === principal.userId;
          if (applies && !credentialAllows(principal, self)) {
            throw forbidden(
              self === 'account'
                ? 'this needs a login session or an unscoped, unrestricted token'
                : `token scope ${self} required`,
            );
          }
        } else if (typeof def.access === 'object') {
          const projectId = def.access.projectParam
            ? String((params as Record<string, unknown>)[def.access.projectParam])
            : null;
          await authorize(def.access.permission, projectId);
        }

        const query = parse(def.query, req.query ?? {}, 'query');
        // Other content types reach handlers as unread streams (the '*' parser in app.ts); a JSON route must
        // refuse them, or a stream object would pass a body schema whose fields are all optional.
        if (def.body && typeof (req.body as { pipe?: unknown } | null)?.pipe === 'function') {
          throw new AppError(415, 'unsupported_media_type', 'the request body must be application/json');
        }
        const body = parse(def.body, req.body, 'body');
        const ctx: RouteContext<unknown, unknown, unknown> = {
          req,
          reply,
          params,
          query,
          body,
          principal,
          requirePrincipal: () => {
            if (!principal) throw unauthorized();
            return principal;
          },
          authorize,
          can: async (permission, projectId = null) => (await check(permission, projectId)) === 'allowed',
          actor: principal
            ? { id: principal.userId, name: principal.userName, ip: clientIp(req) }
            : { id: null, name: 'anonymous', ip: clientIp(req) },
        };
        const result = await def.handler(ctx);
        if (def.raw) return result;
        if (result === undefined) {
          reply.code(def.status && def.status !== 200 ? def.status : 204);
          return reply.send();
        }
        reply.code(def.status ?? 200);
        return result;
      },
    });
  }

  /** OpenAPI 3.1 document of every registered route. */
  openapi(info: { title: string; version: string; serverUrl: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    const toSchema = (s: Schema) => {
      const { $schema: _ignored, ...rest } = z.toJSONSchema(s, {
        io: 'input',
        unrepresentable: 'any',
      }) as Record<string, unknown>;
      return rest;
    };
    const errorRef = { $ref: '#/components/schemas/Error' };
    for (const def of this.routes) {
      const path = def.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, schema] of [
        ['path', def.params],
        ['query', def.query],
      ] as const) {
        if (!schema) continue;
        const json = toSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, prop] of Object.entries(json.properties ?? {})) {
          parameters.push({
            name,
            in: where,
            required: where === 'path' || json.required?.includes(name),
            schema: prop,
          });
        }
      }
      const status = String(def.status ?? 200);
      const operation: Record<string, unknown> = {
        summary: def.summary,
        tags: def.tags,
        operationId: `${def.method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
        'x-access': typeof def.access === 'string' ? def.access : def.access,
        security: def.access === 'public' ? [] : [{ bearer: [] }, { session: [] }],
        parameters,
        responses: {
          [status]: {
            description: 'success',
            ...(def.response ? { content: { 'application/json': { schema: toSchema(def.response) } } } : {}),
          },
          '4XX': { description: 'client error', content: { 'application/json': { schema: errorRef } } },
        },
      };
      if (def.body) {
        operation.requestBody = {
          required: true,
          content: { 'application/json': { schema: toSchema(def.body) } },
        };
      }
      paths[path] ??= {};
      paths[path][def.method.toLowerCase()] = operation;
    }
    return {
      openapi: '3.1.0',
      info: { title: info.title, version: info.version },
      servers: [{ url: info.serverUrl }],
      paths,
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'API token (plat_api_…)' },
          session: { type: 'apiKey', in: 'cookie', name: 'platform_session' },
        },
        schemas: {
          Error: {
            type: 'object',
            required: ['error'],
            properties: {
              error: {
                type: 'object',
                required: ['code', 'message', 'details'],
                properties: {
                  code: { type: 'string' },
                  reason: { type: 'string', description: 'stable machine reason of a domain refusal' },
                  message: { type: 'string' },
                  details: { type: 'array', items: { type: 'object' } },
                },
              },
            },
          },
        },
      },
    };
  }
}

/** Shared schema pieces. */
export const uuidParam = z.object({ id: z.uuid() });
export const paginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});
