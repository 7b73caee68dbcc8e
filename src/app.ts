import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { auditRoutes } from './audit/index.js';
import { type AuthService, authRoutes, createIdentity } from './auth/index.js';
import type { Config } from './config.js';
import { AppError, forbidden, fromDatabaseError, notFound } from './core/errors.js';
import { EventBus } from './core/events.js';
import { type AnyRouteDef, RouteRegistry, route } from './core/http.js';
import { loadMasterKey } from './core/keys.js';
import { createMetrics, type Metrics } from './core/metrics.js';
import { cookieMutationAllowed, loggableUrl, trustedOrigins } from './core/origin.js';
import { Scheduler } from './core/scheduler.js';
import { createGitModule } from './git/index.js';
import { createIssuesModule } from './issues/index.js';
import { createMergeRequestsModule } from './mergerequests/index.js';
import { createNotifyModule } from './notify/index.js';
import { createPipelineModule } from './pipeline/index.js';
import { createProjectsModule } from './projects/index.js';
import { type RbacService, rbacRoutes } from './rbac/index.js';
import { createSecretsModule } from './secrets/index.js';
import type { Drivers } from './store/index.js';
import { FsObjectStore } from './store/index.js';
import { InvalidObjectKeyError, ObjectIntegrityError } from './store/objects/errors.js';
import { objectUrlRoutes } from './store/objects/routes.js';
import { VERSION } from './version.js';
import { createWebhooksModule } from './webhooks/index.js';

export interface Platform {
  config: Config;
  fastify: FastifyInstance;
  registry: RouteRegistry;
  drivers: Drivers;
  log: Logger;
  events: EventBus;
  scheduler: Scheduler;
  metrics: Metrics;
  rbac: RbacService;
  auth: AuthService;
  /** The public service of a module registered in buildApp (e.g. 'secrets'). */
  service<T>(name: string): T;
  /** Waits until background work started by earlier requests (events, post-push work) is done. */
  settle(): Promise<void>;
  /** Starts background loops (serve does; tests may not). */
  startBackground(): void;
  /** Drains requests, stops loops and subscriptions. Does not close the drivers (the caller owns them). */
  close(): Promise<void>;
}

/** What a module gets to build itself: shared drivers and the identity services. */
export interface ModuleContext {
  config: Config;
  drivers: Drivers;
  log: Logger;
  events: EventBus;
  scheduler: Scheduler;
  metrics: Metrics;
  rbac: RbacService;
  auth: AuthService;
  masterKey: Buffer;
}

export interface PlatformModule {
  name: string;
  routes: AnyRouteDef[];
  /** The module's public service (what its index.ts exports for other modules). */
  service?: unknown;
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /** Waits for background work that requests started (e.g. post-push processing). */
  settle?(): Promise<void>;
}

export interface BuildOptions {
  logger?: Logger;
}

export function createLogger(
  config: Pick<Config, 'log_level' | 'dev'>,
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      level: config.log_level,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'res.headers["set-cookie"]',
          '*.password',
          '*.token',
        ],
        censor: '[redacted]',
      },
    },
    // Synchronous writes: progress lines appear while PGlite's WebAssembly keeps the event loop busy
    // (migrations), and nothing is lost when the process dies.
    destination ??
      (config.dev ? pino.transport({ target: 'pino-pretty' }) : pino.destination({ dest: 1, sync: true })),
  );
}

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
};

/** Fastify's own wording for errors a client causes, replaced where it names internals. */
const FRAMEWORK_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'request body is too large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported content type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'the content length does not match the body',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'the JSON body is empty',
  FST_ERR_CTP_INVALID_JSON_BODY: 'the body is not valid JSON',
  FST_ERR_BAD_URL: 'the request path is not valid (bad percent-encoding or UTF-8)',
};

/** The stable error body for a request Fastify refused before routing (bad path encoding). */
function frameworkErrorReply(err: FastifyError, reply: FastifyReply): void {
  const appError = toAppError(err);
  reply.code(appError.status).type('application/json; charset=utf-8').send(appError.toBody());
}

/**
 * A request node's HTTP parser refused (malformed request line or headers, header overflow, idle
 * timeout) never reaches Fastify: answered here with the stable body, then the socket is closed.
 */
function clientErrorReply(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return;
  const [status, reason, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'bad_request', 'the request was not received in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'bad_request', 'the request headers are too large']
        : [400, 'Bad Request', 'bad_request', 'the request is not valid HTTP'];
  const body = JSON.stringify({ error: { code, message, details: [] } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The request as logged: Fastify's default fields, the URL without a presigned URL's signature. */
function serializeRequest(req: FastifyRequest) {
  return {
    method: req.method,
    url: loggableUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket ? req.socket.remotePort : undefined,
  };
}

/** Maps any error to the stable error body; unknown errors become a 500 without details. */
function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof z.ZodError) {
    return new AppError(
      400,
      'bad_request',
      'invalid request',
      err.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  if (err instanceof InvalidObjectKeyError) return new AppError(400, 'bad_request', err.message);
  if (err instanceof ObjectIntegrityError) return new AppError(422, 'unprocessable', err.message);
  const db = fromDatabaseError(err);
  if (db) return db;
  const fe = err as FastifyError;
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const byStatus: Record<number, AppError['code']> = {
      400: 'bad_request',
      401: 'unauthorized',
      403: 'forbidden',
      404: 'not_found',
      405: 'method_not_allowed',
      409: 'conflict',
      413: 'payload_too_large',
      415: 'unsupported_media_type',
      429: 'rate_limited',
    };
    const message = FRAMEWORK_MESSAGES[fe.code] ?? fe.message;
    return new AppError(fe.statusCode, byStatus[fe.statusCode] ?? 'bad_request', message);
  }
  return new AppError(500, 'internal', 'internal error; the request id identifies it in the server log');
}

export async function buildApp(
  config: Config,
  drivers: Drivers,
  options: BuildOptions = {},
): Promise<Platform> {
  const log = options.logger ?? createLogger(config);
  const metrics = createMetrics();
  const events = new EventBus(log);
  const scheduler = new Scheduler(drivers.db.db, log, metrics);
  const { rbac, auth } = createIdentity(
    config,
    { db: drivers.db.db, cache: drivers.cache, pubsub: drivers.pubsub },
    log,
  );
  await rbac.start();

  const fastify: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.body_limit_bytes,
    trustProxy: config.trust_proxy,
    requestIdHeader: false,
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(incoming)
        ? incoming
        : randomUUID();
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Errors Fastify answers before any hook or route (invalid UTF-8 or percent-encoding in the
    // path) would otherwise get its own body, not the stable one.
    frameworkErrors: (err, _req, reply) => frameworkErrorReply(err, reply),
    clientErrorHandler: clientErrorReply,
    childLoggerFactory: (logger, bindings, opts) =>
      logger.child(bindings, { ...opts, serializers: { ...opts.serializers, req: serializeRequest } }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
  });
  fastify.decorateRequest('principal', null);
  const originsForCookies = trustedOrigins(config.public_url, config.cors_origins);

  // Bodies of unknown content types reach handlers as streams (object uploads, later git); JSON routes reject them.
  fastify.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  // text/plain too: no route takes text, and git-lfs labels a text file it uploads text/plain (Fastify's
  // own parser would hold a multi-GiB object in memory as a string, and re-encode its bytes).
  fastify.removeContentTypeParser('text/plain');
  // JSON dialects (application/vnd.git-lfs+json, application/merge-patch+json…) are JSON.
  fastify.addContentTypeParser(
    /^application\/[\w.+-]+\+json(\s*;.*)?$/,
    { parseAs: 'string' },
    fastify.getDefaultJsonParser('error', 'error'),
  );

  fastify.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    reply.headers(SECURITY_HEADERS);
    if (config.secure_cookies)
      reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains');
    const origin = req.headers.origin;
    if (origin && config.cors_origins.includes(origin)) {
      reply.header('access-control-allow-origin', origin);
      reply.header('access-control-allow-credentials', 'true');
      reply.header('vary', 'Origin');
      if (req.method === 'OPTIONS') {
        reply.header('access-control-allow-methods', 'GET, POST, PUT, PATCH, DELETE');
        reply.header('access-control-allow-headers', 'authorization, content-type, x-request-id');
        reply.header('access-control-max-age', '600');
        return reply.code(204).send();
      }
    }
    req.principal = await auth.authenticate(req);
    if (req.principal?.sessionId && !cookieMutationAllowed(req.method, req.headers, originsForCookies)) {
      throw forbidden(
        'a request authenticated by the session cookie must come from the platform itself (Origin or Sec-Fetch-Site: same-origin); use an API token from other clients',
      );
    }
    const log = req.log as unknown as Logger;
    if (req.principal && log.isLevelEnabled('info')) {
      // The per-request logger (also reply.log) gets the user id in place: no child logger per request.
      log.setBindings({ user_id: req.principal.userId });
    }
  });

  // A callback hook, not an async one: it runs on every response and needs no promise.
  fastify.addHook('onResponse', (req, reply, done) => {
    const routeUrl = req.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: req.method, route: routeUrl, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: req.method, route: routeUrl }, reply.elapsedTime / 1000);
    done();
  });

  fastify.setErrorHandler(async (err, req, reply) => {
    const appError = toAppError(err);
    if (appError.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: appError.code, message: appError.message }, 'request rejected');
    for (const [name, value] of Object.entries(appError.headers)) reply.header(name, value);
    // Stock git only prompts for credentials when a 401 carries a Basic challenge.
    if (appError.status === 401 && isGitPath(req.url))
      reply.header('www-authenticate', 'Basic realm="Platform", charset="UTF-8"');
    return reply.code(appError.status).type('application/json; charset=utf-8').send(appError.toBody());
  });
  fastify.setNotFoundHandler(async (req, reply) => {
    const e = notFound(`route ${req.method} ${req.url.split('?')[0]}`);
    return reply.code(404).send(e.toBody());
  });

  const registry = new RouteRegistry(
    fastify,
    {
      check: (p, perm, project) => rbac.check(p, perm, project),
    },
    config.body_limit_bytes,
  );

  const systemRoutes: AnyRouteDef[] = [
    route({
      method: 'GET',
      url: '/healthz',
      summary: 'Liveness: the process is up',
      tags: ['system'],
      access: 'public',
      handler: async () => ({ status: 'ok', version: VERSION }),
    }),
    route({
      method: 'GET',
      url: '/readyz',
      summary: 'Readiness: database, cache, pub/sub and object store reachable (503 names the failing one)',
      tags: ['system'],
      access: 'public',
      handler: async ({ reply }) => {
        const checks = await checkDependencies(drivers);
        const failed = checks.filter((c) => !c.ok);
        if (failed.length > 0) {
          throw new AppError(
            503,
            'unavailable',
            `not ready: ${failed.map((c) => c.name).join(', ')} unreachable`,
            failed.map((c) => ({ dependency: c.name, message: c.error ?? 'unreachable' })),
          );
        }
        reply.header('cache-control', 'no-store');
        return { status: 'ready', checks: checks.map(({ name, ms }) => ({ name, ok: true, ms })) };
      },
    }),
    route({
      method: 'GET',
      url: '/metrics',
      summary: 'Prometheus metrics',
      tags: ['system'],
      access: 'public',
      raw: true,
      handler: async ({ reply }) => {
        const stats = drivers.db.stats();
        metrics.dbPool.set({ state: 'total' }, stats.total);
        metrics.dbPool.set({ state: 'idle' }, stats.idle);
        metrics.dbPool.set({ state: 'waiting' }, stats.waiting);
        const body = await metrics.registry.metrics();
        return reply.type(metrics.registry.contentType).send(body);
      },
    }),
    route({
      method: 'GET',
      url: '/api/openapi.json',
      summary: 'This OpenAPI document',
      tags: ['system'],
      access: 'public',
      handler: async () =>
        registry.openapi({ title: 'Platform API', version: VERSION, serverUrl: config.public_url }),
    }),
    route({
      method: 'GET',
      url: '/api/docs',
      summary: 'Human-readable API reference',
      tags: ['system'],
      access: 'public',
      raw: true,
      handler: async ({ reply }) => reply.type('text/html; charset=utf-8').send(renderDocs(registry.routes)),
    }),
  ];

  if (drivers.objects instanceof FsObjectStore)
    systemRoutes.push(...objectUrlRoutes(drivers.objects, config.git_body_limit_bytes));

  const ctx: ModuleContext = {
    config,
    drivers,
    log,
    events,
    scheduler,
    metrics,
    rbac,
    auth,
    masterKey: loadMasterKey(config),
  };
  // Later modules, in dependency order. Each: routes, optional start/stop, and a service for other modules.
  const projectsModule = createProjectsModule(ctx);
  const secretsModule = createSecretsModule(ctx);
  const modules: PlatformModule[] = [
    projectsModule,
    createGitModule(ctx, projectsModule.service),
    createMergeRequestsModule(ctx, projectsModule.service),
    secretsModule,
    createNotifyModule(ctx),
    createPipelineModule(ctx, projectsModule.service, secretsModule.service),
    createWebhooksModule(ctx),
    createIssuesModule(ctx),
  ];

  registry.register([
    ...systemRoutes,
    ...authRoutes(auth, { secureCookies: config.secure_cookies }),
    ...rbacRoutes(rbac),
    ...auditRoutes(drivers.db.db),
    ...modules.flatMap((m) => m.routes),
  ]);
  for (const m of modules) await m.start?.();

  scheduler.add({
    name: 'auth.purge-expired-sessions',
    intervalMs: 10 * 60_000,
    run: async () => {
      const purged = await auth.purgeExpiredSessions();
      if (purged > 0) log.info({ purged }, 'expired sessions purged');
    },
  });

  await fastify.ready();

  let closed = false;
  return {
    config,
    fastify,
    registry,
    drivers,
    log,
    events,
    scheduler,
    metrics,
    rbac,
    auth,
    service: <T>(name: string) => {
      const m = modules.find((x) => x.name === name);
      if (!m) throw new Error(`no module named ${name}`);
      return m.service as T;
    },
    settle: async () => {
      for (const m of modules) await m.settle?.();
      await events.drain();
    },
    startBackground: () => scheduler.start(),
    close: async () => {
      if (closed) return;
      closed = true;
      // In-flight requests may finish (idle keep-alive connections close at once), but not forever:
      // a client that stopped mid-upload or a stream nobody ends must not hold the shutdown.
      const force = setTimeout(() => fastify.server.closeAllConnections(), CLOSE_DRAIN_MS);
      try {
        await fastify.close();
      } finally {
        clearTimeout(force);
      }
      await scheduler.stop();
      for (const m of [...modules].reverse()) await m.stop?.();
      await events.drain();
      await rbac.stop();
    },
  };
}

/** How long a shutdown waits for in-flight requests before their connections are closed. */
const CLOSE_DRAIN_MS = 10_000;

function isGitPath(url: string): boolean {
  return /^\/[^/]+\/[^/]+\/(info\/refs|git-upload-pack|git-receive-pack|info\/lfs\/)/.test(url);
}

interface DependencyCheck {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

async function checkDependencies(drivers: Drivers): Promise<DependencyCheck[]> {
  const probe = async (name: string, fn: () => Promise<void>): Promise<DependencyCheck> => {
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out after 3 s')), 3000);
        }),
      ]);
      return { name, ok: true, ms: Math.round(performance.now() - start) };
    } catch (err) {
      return { name, ok: false, ms: Math.round(performance.now() - start), error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  };
  return Promise.all([
    probe('database', () => drivers.db.ping()),
    probe('cache', () => drivers.cache.ping()),
    probe('pubsub', () => drivers.pubsub.ping()),
    probe('object_store', () => drivers.objects.ping()),
  ]);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function renderDocs(routes: AnyRouteDef[]): string {
  const rows = routes
    .map((r) => {
      const access =
        typeof r.access === 'string'
          ? r.access
          : 'self' in r.access
            ? `self (${r.access.self})`
            : `${r.access.permission}${r.access.projectParam ? ' on project' : ''}`;
      return `<tr><td><code>${r.method}</code></td><td><code>${escapeHtml(r.url)}</code></td><td>${escapeHtml(r.summary)}</td><td>${escapeHtml(access)}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Platform API</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}</style>
</head><body><h1>Platform API</h1><p>Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a>. Errors: <code>{"error":{"code","message","details"}}</code>.</p>
<table><thead><tr><th>method</th><th>path</th><th>summary</th><th>access</th></tr></thead><tbody>
${rows}
</tbody></table></body></html>`;
}
