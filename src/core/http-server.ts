import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config.js';
import { InvalidObjectKeyError, ObjectIntegrityError } from '../store/objects/errors.js';
import { AppError, forbidden, fromDatabaseError, fromUnavailableDependency, notFound } from './errors.js';
import type { Principal } from './http.js';
import type { Metrics } from './metrics.js';
import { cookieMutationAllowed, loggableUrl, trustedOrigins } from './origin.js';

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
  const db = fromDatabaseError(err) ?? fromUnavailableDependency(err);
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

/** The largest WebSocket message a client may send (chat messages, subscriptions), in bytes. */
const WEBSOCKET_MAX_PAYLOAD = 1024 * 1024;

/**
 * The Fastify instance every module's routes are registered on: request ids, security headers,
 * CORS for the configured origins, authentication of every request, request metrics, the one
 * error handler that turns anything thrown into the stable error body, and WebSocket upgrades
 * (@fastify/websocket: an upgrade runs through the same hooks and route as any request, so the
 * registry's `websocket` routes check access before the handshake completes).
 */
export async function createHttpServer(opts: {
  config: Config;
  log: Logger;
  metrics: Metrics;
  /** Plain header values and the client address: authentication knows nothing of Fastify. */
  authenticate: (
    credentials: { authorization?: string | undefined; cookie?: string | undefined },
    ip: string,
  ) => Promise<Principal | null>;
}): Promise<FastifyInstance> {
  const { config, log, metrics, authenticate } = opts;
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
    req.principal = await authenticate(
      { authorization: req.headers.authorization, cookie: req.headers.cookie },
      req.ip,
    );
    // A WebSocket handshake is a GET a browser sends cross-site with the cookie (no CORS on it):
    // checked like a mutation, or any page could open a session's stream as the signed-in user.
    const method = isWebSocketUpgrade(req) ? 'POST' : req.method;
    if (req.principal?.sessionId && !cookieMutationAllowed(method, req.headers, originsForCookies)) {
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
  // The registry re-checks a WebSocket's credentials periodically (a revoked token, a deactivated
  // user): the same authentication as the handshake, from the handshake's headers and address.
  fastify.decorate('reauthenticate', (req: FastifyRequest) =>
    authenticate({ authorization: req.headers.authorization, cookie: req.headers.cookie }, req.ip),
  );
  // Before any route is added: its onRoute hook turns the registry's `wsHandler` routes into upgrades.
  await fastify.register(websocket, { options: { maxPayload: WEBSOCKET_MAX_PAYLOAD } });
  return fastify;
}

function isWebSocketUpgrade(req: FastifyRequest): boolean {
  return String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
}

function isGitPath(url: string): boolean {
  return /^\/[^/]+\/[^/]+\/(info\/refs|git-upload-pack|git-receive-pack|info\/lfs\/)/.test(url);
}
