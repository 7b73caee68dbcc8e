import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, badRequest, forbidden, notFound, unauthorized } from './errors.js';
import { serializerSchema } from './json-schema.js';
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

/** Finds a project's id by owner and name (null when there is none): the `/:owner/:name/…` aliases. */
export type ProjectResolver = (owner: string, name: string) => Promise<string | null>;

/** What a registered route carries in Fastify's route config: the response validator of the tests reads it. */
export interface RouteConfig {
  def: AnyRouteDef;
}

/** A reply as the registry's observer sees it: the serialised payload of the route's answer. */
export interface ObservedReply {
  /** The route that answered; undefined for the not-found handler and replies sent before routing. */
  def: AnyRouteDef | undefined;
  method: string;
  url: string;
  status: number;
  contentType: string;
  payload: unknown;
}

/** The project sub-resources' prefix that also answers as `/api/projects/:owner/:name`. */
const PROJECT_ID_PREFIX = '/api/projects/:id';
const PROJECT_NAME_PREFIX = '/api/projects/:owner/:name';

/** The success status a route answers with when the handler returns a body. */
export function successStatus(def: AnyRouteDef): number {
  return def.produces?.status ?? def.status ?? 200;
}

/** The keys a query schema accepts, or null when the schema is not a plain object (no strictness then). */
function queryKeys(schema: Schema | undefined): ReadonlySet<string> | null {
  if (!schema) return new Set();
  if (schema instanceof z.ZodObject) return new Set(Object.keys(schema.shape));
  return null;
}

/**
 * The registry of every API route: the OpenAPI document, the every-route tests and the tests'
 * response validator read it. Centrally for every route: access before anything else, unknown query
 * parameters refused, request validation with zod, the reply written by Fastify's compiled
 * serializer from the route's response schema, and the `/api/projects/:owner/:name/…` alias of every
 * `/api/projects/:id/…` route.
 */
export class RouteRegistry {
  readonly routes: AnyRouteDef[] = [];
  /** `METHOD url` of everything registered with Fastify, aliases included. */
  private readonly registered = new Set<string>();

  constructor(
    private readonly app: FastifyInstance,
    private readonly access: AccessControl,
    private readonly defaultBodyLimit: number,
    private readonly resolveProject?: ProjectResolver,
  ) {
    // One sync hook and a null check per reply: the tests' response validator listens here.
    app.addHook('onSend', (req, reply, payload, done) => {
      const observer = this.observer;
      if (observer) {
        observer({
          def: (req.routeOptions.config as Partial<RouteConfig> | undefined)?.def,
          method: req.method,
          url: req.url,
          status: reply.statusCode,
          contentType: String(reply.getHeader('content-type') ?? ''),
          payload,
        });
      }
      done(null, payload);
    });
  }

  private observer: ((reply: ObservedReply) => void) | undefined;

  /** Sees every reply as sent (the tests validate each against its route's schema). */
  observe(observer: ((reply: ObservedReply) => void) | undefined): void {
    this.observer = observer;
  }

  register(defs: AnyRouteDef[]): void {
    for (const def of defs) {
      if (!def.access) throw new Error(`route ${def.method} ${def.url} declares no access`);
      this.routes.push(def);
      this.mount(def, def.url, false);
    }
    // After every route of the batch: an alias yields to a route registered under its own URL
    // (GET /api/projects/:owner/:name is the project itself).
    if (!this.resolveProject) return;
    for (const def of defs) {
      if (def.url !== PROJECT_ID_PREFIX && !def.url.startsWith(`${PROJECT_ID_PREFIX}/`)) continue;
      const alias = PROJECT_NAME_PREFIX + def.url.slice(PROJECT_ID_PREFIX.length);
      if (!this.registered.has(`${def.method} ${alias}`)) this.mount(def, alias, true);
    }
  }

  /** The `/api/projects/:owner/:name/…` URL a `/api/projects/:id/…` route also answers under, if any. */
  aliasOf(def: AnyRouteDef): string | null {
    if (!this.resolveProject) return null;
    if (def.url !== PROJECT_ID_PREFIX && !def.url.startsWith(`${PROJECT_ID_PREFIX}/`)) return null;
    const alias = PROJECT_NAME_PREFIX + def.url.slice(PROJECT_ID_PREFIX.length);
    return this.routes.some((r) => r !== def && r.method === def.method && r.url === alias) ? null : alias;
  }

  private mount(def: AnyRouteDef, url: string, alias: boolean): void {
    this.registered.add(`${def.method} ${url}`);
    const access = this.access;
    const resolveProject = this.resolveProject;
    const allowedQuery = queryKeys(def.query);
    const status = successStatus(def);
    const config: RouteConfig = { def };
    this.app.route({
      method: def.method,
      url,
      bodyLimit: def.bodyLimit ?? this.defaultBodyLimit,
      config,
      // Only the reply: fast-json-stringify compiled from the response schema writes it (it drops
      // undeclared fields). Requests stay validated by zod below, never by Fastify's own compiler.
      ...(def.response && !def.raw
        ? { schema: { response: { [status]: serializerSchema(def.response) } } }
        : {}),
      handler: async (req, reply) => {
        const principal = req.principal;
        let rawParams = req.params as Record<string, unknown>;
        if (alias && resolveProject) {
          const { owner, name, ...rest } = rawParams as Record<string, string>;
          const id = await resolveProject(String(owner), String(name));
          if (!id) throw notFound('project');
          rawParams = { ...rest, id };
        }
        const params = parse(def.params, rawParams, 'params');

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

        const rawQuery = (req.query ?? {}) as Record<string, unknown>;
        if (allowedQuery) refuseUnknownQuery(rawQuery, allowedQuery);
        const query = parse(def.query, rawQuery, 'query');
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
        reply.code(status);
        return result;
      },
    });
  }
}

/** A query parameter the route does not know is refused, named, rather than silently ignored. */
function refuseUnknownQuery(query: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  const unknown = Object.keys(query).filter((k) => !allowed.has(k));
  if (unknown.length === 0) return;
  throw badRequest(
    `unknown query parameter${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}${allowed.size ? ` (known: ${[...allowed].join(', ')})` : ' (this operation takes none)'}`,
    unknown.map((k) => ({
      path: `query.${k}`,
      message: 'unknown query parameter',
      code: 'unrecognized_keys',
    })),
  );
}

/** Shared schema pieces. */
export const uuidParam = z.object({ id: z.uuid() });
export const paginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});
