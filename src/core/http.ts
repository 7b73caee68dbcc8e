import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
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
   * The request body reaches the handler unread (the request stream) whatever its content type,
   * JSON included (`requestBodyType(req)` tells the type sent): the route decodes it itself (OTLP
   * ingest: gzip-encoded protobuf or JSON, limits and errors of its own).
   */
  streamBody?: boolean;
  /**
   * What a raw route answers, for the OpenAPI document: the success status (302 for a redirect) and
   * the content type and meaning of its body.
   */
  produces?: { status?: number; contentType?: string; description: string };
  /** Mutating routes that by design write no audit row (e.g. logout of an unknown session). */
  handler(ctx: RouteContext<Infer<P>, Infer<Q>, Infer<B>>): Promise<unknown>;
  /** A WebSocket route (declare it with `websocketRoute`): see `WebSocketSpec`. */
  websocket?: WebSocketSpec<Infer<P>, Infer<Q>>;
}

/**
 * What a WebSocket route's handler gets once the handshake is done. `principal` is the current one:
 * the periodic re-check replaces it (the same user, re-authenticated).
 */
export interface WebSocketContext<P, Q> {
  socket: WebSocket;
  req: FastifyRequest;
  params: P;
  query: Q;
  readonly principal: Principal | null;
  actor: Actor;
  /** Throws like `RouteContext.authorize`, with the current principal. */
  authorize(permission: Permission, projectId?: string | null): Promise<void>;
  can(permission: Permission, projectId?: string | null): Promise<boolean>;
  /** Runs once when the socket closes, whoever closes it (client, access lost, shutdown). */
  onClose(fn: () => void): void;
}

/**
 * A WebSocket route: the upgrade request runs the route's `access` check (and params/query
 * parsing, the project alias) before the handshake, so a refused upgrade is an ordinary HTTP error
 * answer with the stable body. While the socket is open, every `recheckMs` the handshake's
 * credentials are authenticated again and `access` (then the route's own `recheck`) evaluated
 * again with them; when that fails the socket is closed with 4401 (no longer authenticated),
 * 4403 (no longer allowed) or 4404 (no longer visible). Used by agent sessions' streams and the
 * observability live tail.
 */
export interface WebSocketSpec<P, Q> {
  /** How often access is re-checked; default 30 s. */
  recheckMs?: number;
  /** The route's own condition beyond `access` (e.g. the resource still exists); false closes with 4403. */
  recheck?(ctx: WebSocketContext<P, Q>): Promise<boolean>;
  /** Called once the socket is open; errors close it with 1011. */
  open(ctx: WebSocketContext<P, Q>): void | Promise<void>;
  /**
   * What a plain GET (no Upgrade) of the same URL gets, as a raw route with the same access, params
   * and query checks (e.g. the stream over server-sent events); absent: 426.
   */
  plain?(ctx: RouteContext<P, Q, undefined>): Promise<unknown>;
}

/** WebSocket close codes of a lost access (4000–4999 are the application's range). */
export const WS_CLOSE = { unauthorized: 4401, forbidden: 4403, notFound: 4404 } as const;

const DEFAULT_RECHECK_MS = 30_000;

/** Declares a WebSocket route: a GET documented as 101; a plain (non-upgrade) GET is answered 426. */
export function websocketRoute<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
>(
  def: Omit<
    RouteDef<P, Q, undefined>,
    'method' | 'handler' | 'raw' | 'body' | 'websocket' | 'response' | 'status'
  > & {
    websocket: WebSocketSpec<Infer<P>, Infer<Q>>;
  },
): AnyRouteDef {
  return {
    ...def,
    method: 'GET',
    raw: true,
    produces: def.produces ?? { status: 101, description: 'Switching Protocols: the WebSocket stream' },
    handler:
      (def.websocket.plain as RouteDef<P, Q, undefined>['handler'] | undefined) ??
      (async () => {
        throw new AppError(
          426,
          'bad_request',
          'this resource is a WebSocket: send the request with Upgrade: websocket',
          [],
          {
            upgrade: 'websocket',
            connection: 'Upgrade',
          },
        );
      }),
  } as AnyRouteDef;
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
  interface FastifyInstance {
    /** Authenticates the request's credentials again (core/http-server.ts): WebSocket re-checks. */
    reauthenticate(req: FastifyRequest): Promise<Principal | null>;
  }
}

/** What the access check and request parsing produced: the handler's context is built from it. */
interface Prepared {
  params: unknown;
  query: unknown;
  principal: Principal | null;
}

/** The upgrade request's prepared context, from the route's preHandler to its WebSocket handler. */
const WS_PREPARED = Symbol('ws-prepared');
type WsRequest = FastifyRequest & { [WS_PREPARED]?: Prepared };

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
    // Content-type parsers are chosen by the header: a streamBody route's request is relabelled
    // before parsing so the pass-through parser hands over the stream; the type sent is kept aside.
    app.addHook('onRoute', (opts) => {
      if (!(opts.config as Partial<RouteConfig> | undefined)?.def?.streamBody) return;
      opts.onRequest = [...(opts.onRequest ? [opts.onRequest].flat() : []), relabelStreamBody];
    });
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
    const status = successStatus(def);
    const config: RouteConfig = { def };
    if (def.websocket) {
      this.mountWebSocket(def, url, alias, config);
      return;
    }
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
      handler: this.routeHandler(def, alias, status),
    });
  }

  /** Access, params, query and body checks, then the route's handler and its answer. */
  private routeHandler(def: AnyRouteDef, alias: boolean, status: number) {
    return async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
      const { params, query, principal } = await this.prepare(def, req, alias);
      // Other content types reach handlers as unread streams (the '*' parser in app.ts); a JSON route must
      // refuse them, or a stream object would pass a body schema whose fields are all optional.
      if (def.body && typeof (req.body as { pipe?: unknown } | null)?.pipe === 'function') {
        throw new AppError(415, 'unsupported_media_type', 'the request body must be application/json');
      }
      const body = parse(def.body, req.body, 'body');
      const authorize = this.authorizer(principal);
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
        can: async (permission, projectId = null) =>
          (await this.access.check(principal, permission, projectId)) === 'allowed',
        actor: actorOf(principal, req),
      };
      const result = await def.handler(ctx);
      if (def.raw) return result;
      if (result === undefined) {
        reply.code(def.status && def.status !== 200 ? def.status : 204);
        return reply.send();
      }
      reply.code(status);
      return result;
    };
  }

  /** Throws 401/403/404 unless the principal holds the permission (on the project when given). */
  private authorizer(principal: Principal | null) {
    return async (permission: Permission, projectId: string | null = null) => {
      const decision = await this.access.check(principal, permission, projectId);
      if (decision === 'allowed') return;
      if (decision === 'hidden') throw notFound('project');
      if (!principal) throw unauthorized();
      throw forbidden(`permission ${permission} required${projectId ? ' on this project' : ''}`);
    };
  }

  /** Params (the project alias resolved), the route's `access`, then the query: before anything else. */
  private async prepare(def: AnyRouteDef, req: FastifyRequest, alias: boolean): Promise<Prepared> {
    const params = await this.parseParams(def, req, alias);
    const principal = req.principal;
    await this.checkAccess(def, principal, params);
    const rawQuery = (req.query ?? {}) as Record<string, unknown>;
    const allowedQuery = queryKeys(def.query);
    if (allowedQuery) refuseUnknownQuery(rawQuery, allowedQuery);
    const query = parse(def.query, rawQuery, 'query');
    return { params, query, principal };
  }

  private async parseParams(def: AnyRouteDef, req: FastifyRequest, alias: boolean): Promise<unknown> {
    let rawParams = req.params as Record<string, unknown>;
    if (alias && this.resolveProject) {
      const { owner, name, ...rest } = rawParams as Record<string, string>;
      const id = await this.resolveProject(String(owner), String(name));
      if (!id) throw notFound('project');
      rawParams = { ...rest, id };
    }
    return parse(def.params, rawParams, 'params');
  }

  /** The route's declared `access` for this principal; throws the refusal. */
  private async checkAccess(def: AnyRouteDef, principal: Principal | null, params: unknown): Promise<void> {
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
      await this.authorizer(principal)(def.access.permission, projectId);
    }
  }

  /**
   * A WebSocket route: the preHandler (an ordinary request still, so refusals are HTTP answers)
   * prepares the context; @fastify/websocket completes the handshake and calls `wsHandler`.
   */
  private mountWebSocket(def: AnyRouteDef, url: string, alias: boolean, config: RouteConfig): void {
    const spec = def.websocket as WebSocketSpec<unknown, unknown>;
    this.app.route({
      method: 'GET',
      url,
      config,
      preHandler: async (req) => {
        // A plain GET: `plain` routes check in their own handler; otherwise the same checks as the
        // upgrade run first (a caller who may not see the resource gets its 401/404, not the 426).
        if (!req.ws) {
          if (!spec.plain) await this.prepare(def, req, alias);
          return;
        }
        (req as WsRequest)[WS_PREPARED] = await this.prepare(def, req, alias);
      },
      // A plain GET: the route's `plain` handler as any raw route (e.g. the same stream over SSE), else 426.
      handler: spec.plain
        ? this.routeHandler(def, alias, successStatus(def))
        : async (req, reply) => def.handler({ req, reply } as RouteContext<unknown, unknown, unknown>),
      wsHandler: (socket: WebSocket, req: FastifyRequest) => {
        const prepared = (req as WsRequest)[WS_PREPARED];
        if (!prepared) {
          socket.close(1011, 'internal error');
          return;
        }
        this.openWebSocket(def, spec, socket, req, prepared);
      },
    });
  }

  private openWebSocket(
    def: AnyRouteDef,
    spec: WebSocketSpec<unknown, unknown>,
    socket: WebSocket,
    req: FastifyRequest,
    prepared: Prepared,
  ): void {
    let principal = prepared.principal;
    const closers: (() => void)[] = [];
    const close = (code: number, reason: string) => {
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING)
        socket.close(code, reason);
    };
    const ctx: WebSocketContext<unknown, unknown> = {
      socket,
      req,
      params: prepared.params,
      query: prepared.query,
      get principal() {
        return principal;
      },
      actor: actorOf(principal, req),
      authorize: (permission, projectId = null) => this.authorizer(principal)(permission, projectId),
      can: async (permission, projectId = null) =>
        (await this.access.check(principal, permission, projectId)) === 'allowed',
      onClose: (fn) => {
        closers.push(fn);
      },
    };
    let checking = false;
    const recheck = async () => {
      if (checking) return;
      checking = true;
      try {
        const current = prepared.principal ? await this.app.reauthenticate(req) : null;
        if (prepared.principal && (!current || current.userId !== prepared.principal.userId)) {
          close(WS_CLOSE.unauthorized, 'no longer authenticated');
          return;
        }
        principal = current;
        await this.checkAccess(def, principal, prepared.params);
        if (spec.recheck && !(await spec.recheck(ctx))) close(WS_CLOSE.forbidden, 'no longer allowed');
      } catch (err) {
        const status = err instanceof AppError ? err.status : 0;
        if (status === 401) close(WS_CLOSE.unauthorized, 'no longer authenticated');
        else if (status === 403) close(WS_CLOSE.forbidden, 'no longer allowed');
        else if (status === 404) close(WS_CLOSE.notFound, 'no longer visible');
        else req.log.warn({ err }, 'websocket access re-check failed; trying again at the next interval');
      } finally {
        checking = false;
      }
    };
    const timer = setInterval(() => void recheck(), spec.recheckMs ?? DEFAULT_RECHECK_MS);
    timer.unref();
    socket.once('close', () => {
      clearInterval(timer);
      for (const fn of closers.splice(0)) {
        try {
          fn();
        } catch (err) {
          req.log.warn({ err }, 'websocket close handler failed');
        }
      }
    });
    Promise.resolve()
      .then(() => spec.open(ctx))
      .catch((err) => {
        req.log.error({ err }, 'websocket handler failed');
        close(1011, 'internal error');
      });
  }
}

function actorOf(principal: Principal | null, req: FastifyRequest): Actor {
  return principal
    ? { id: principal.userId, name: principal.userName, ip: clientIp(req) }
    : { id: null, name: 'anonymous', ip: clientIp(req) };
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

const sentBodyTypes = new WeakMap<FastifyRequest, string>();

function relabelStreamBody(req: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  sentBodyTypes.set(req, String(req.headers['content-type'] ?? ''));
  req.headers['content-type'] = 'application/octet-stream';
  done();
}

/** The Content-Type a `streamBody` route's request was sent with ('' when none). */
export function requestBodyType(req: FastifyRequest): string {
  return sentBodyTypes.get(req) ?? String(req.headers['content-type'] ?? '');
}

/** Shared schema pieces. */
export const uuidParam = z.object({ id: z.uuid() });
export const paginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});
