/**
 * The one error hierarchy. Every error a client sees is an AppError rendered as
 * `{"error": {"code", "reason"?, "message", "details"}}`; anything else is a 500 with a generic
 * message. `code` is the HTTP-level class; `reason` is the stable machine reason of a domain refusal
 * (`mr.approvals_required`), declared by the module that refuses (see `declareReasons`) and listed
 * per operation in the OpenAPI document, so clients branch on it instead of on the message.
 */
export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'unprocessable'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

export interface ErrorDetail {
  path?: string;
  message: string;
  [key: string]: unknown;
}

export class AppError extends Error {
  /** The stable machine reason of a domain refusal; set with `because()`. */
  reason: string | undefined;

  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }

  /** Sets the stable reason (one of the throwing module's declared reasons). */
  because(reason: string): this {
    this.reason = reason;
    return this;
  }

  toBody() {
    return {
      error: {
        code: this.code,
        ...(this.reason ? { reason: this.reason } : {}),
        message: this.message,
        details: this.details,
      },
    };
  }
}

/**
 * Modules whose refusals any route may answer: authentication and authorization run around every
 * handler (a token that expired, a user who must be a participant), so their reasons are listed once
 * for the whole API instead of on each operation.
 */
const ANYWHERE_MODULES = new Set(['auth', 'rbac']);

/** Whether any route may answer with this reason (see ANYWHERE_MODULES). */
export function answeredAnywhere(reason: string): boolean {
  const module = declaredReasons.get(reason)?.module;
  return module !== undefined && ANYWHERE_MODULES.has(module);
}

/** Every reason a module declared, by reason: the OpenAPI document and docs list them. */
export const declaredReasons = new Map<string, { module: string; description: string }>();

/**
 * A module's refusal reasons: `{ key: ['module.reason', 'when it is refused'] }` → `{ key: 'module.reason' }`.
 * Reasons are `<module>.<snake_case>`; declaring one twice (two modules, one name) throws at start.
 */
export function declareReasons<const T extends Record<string, readonly [string, string]>>(
  module: string,
  reasons: T,
): { [K in keyof T]: T[K][0] } {
  const out: Record<string, string> = {};
  for (const [key, [reason, description]] of Object.entries(reasons)) {
    if (!/^[a-z]+(_[a-z]+)*\.[a-z0-9]+(_[a-z0-9]+)*$/.test(reason) || !reason.startsWith(`${module}.`))
      throw new Error(`reason ${reason} of module ${module} is not "${module}.<snake_case>"`);
    const known = declaredReasons.get(reason);
    if (known && known.module !== module) throw new Error(`reason ${reason} is declared twice`);
    declaredReasons.set(reason, { module, description });
    out[key] = reason;
  }
  return out as { [K in keyof T]: T[K][0] };
}

export const badRequest = (message: string, details: ErrorDetail[] = []) =>
  new AppError(400, 'bad_request', message, details);
export const unauthorized = (message = 'authentication required') =>
  new AppError(401, 'unauthorized', message);
export const forbidden = (message = 'permission denied') => new AppError(403, 'forbidden', message);
export const notFound = (what = 'resource') => new AppError(404, 'not_found', `${what} not found`);
export const conflict = (message: string, details: ErrorDetail[] = []) =>
  new AppError(409, 'conflict', message, details);
export const unprocessable = (message: string, details: ErrorDetail[] = []) =>
  new AppError(422, 'unprocessable', message, details);
export const rateLimited = (retryAfterSeconds: number) =>
  new AppError(429, 'rate_limited', `too many attempts; retry after ${retryAfterSeconds} s`, [], {
    'retry-after': String(retryAfterSeconds),
  });
export const unavailable = (message: string, details: ErrorDetail[] = []) =>
  new AppError(503, 'unavailable', message, details);

/** Socket errors of a connection to a store (PostgreSQL, Valkey/Redis, S3) that is down or restarting. */
const UNREACHABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

/**
 * A request that failed because a store is unreachable (the database restarting, Valkey killed) is
 * the server's temporary condition, not a bug: 503 `unavailable` with Retry-After, like /readyz.
 * Recognises node's socket errors on connect/read/write, PostgreSQL's shutdown and connection
 * classes (57P01–57P03, 08xxx), node-postgres' and iovalkey's lost-connection errors.
 */
export function fromUnavailableDependency(err: unknown): AppError | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; syscall?: unknown; message?: unknown; name?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : '';
  const unreachable =
    (UNREACHABLE_ERRNOS.has(code) && ['connect', 'read', 'write'].includes(String(e.syscall))) ||
    /^(57P0[123]|08[0-9A-Z]{3})$/.test(code) ||
    e.name === 'MaxRetriesPerRequestError' ||
    /^(Connection terminated|timeout exceeded when trying to connect|Connection is closed)/.test(message);
  if (!unreachable) return undefined;
  return new AppError(503, 'unavailable', 'a backing service is unreachable; retry shortly', [], {
    'retry-after': '1',
  });
}

interface PgLikeError {
  code?: unknown;
  constraint?: unknown;
  detail?: unknown;
  table?: unknown;
}

/**
 * Maps PostgreSQL errors (from `pg` or PGlite, both carry the SQLSTATE in `code`) to API errors;
 * returns undefined for anything that is not a client-caused database error.
 */
export function fromDatabaseError(err: unknown): AppError | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const e = err as PgLikeError;
  if (typeof e.code !== 'string' || !/^[0-9A-Z]{5}$/.test(e.code)) return undefined;
  const constraint = typeof e.constraint === 'string' ? e.constraint : undefined;
  const details = constraint ? [{ message: `constraint ${constraint}`, constraint }] : [];
  switch (e.code) {
    case '23505':
      return conflict('a resource with these unique values already exists', details);
    case '23503':
      return unprocessable('a referenced resource does not exist or is still referenced', details);
    case '23514':
    case '23502':
      return unprocessable('the values violate a constraint', details);
    case '22P02':
    case '22007':
    case '22008':
    case '22003':
    case '22001':
    case '22021': // e.g. a NUL byte in a text value
    case '22P05':
      return badRequest('a value has an invalid format or is out of range');
    default:
      return undefined;
  }
}
