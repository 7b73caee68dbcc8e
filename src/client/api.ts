import { readLogin } from './credentials.js';

/**
 * Exit codes of the client commands (docs/cli.md lists them): scripts can tell a refusal from a
 * missing login or an unreachable server.
 */
export const EXIT = {
  ok: 0,
  /** The API answered an error not listed below (a 400, a 5xx). */
  error: 1,
  /** The command line does not fit the command. */
  usage: 2,
  /** No login, or the token was refused (401). */
  unauthenticated: 3,
  /** The caller lacks the permission (403). */
  forbidden: 4,
  /** No such project, issue, merge request, pipeline (404). */
  notFound: 5,
  /** Refused by a rule: a merge blocker, a state conflict (409, 422). */
  refused: 6,
  /** The server cannot be reached, or does not offer this feature. */
  unavailable: 7,
  /** What the command waited for ended unsuccessfully (a followed pipeline failed or was cancelled). */
  failed: 8,
} as const;

/** A failure of a client command: the message printed and the exit code. */
export class ClientError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

function exitCodeFor(status: number): number {
  if (status === 401) return EXIT.unauthenticated;
  if (status === 403) return EXIT.forbidden;
  if (status === 404) return EXIT.notFound;
  if (status === 409 || status === 422) return EXIT.refused;
  return EXIT.error;
}

export interface ApiOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  bytes: Buffer;
}

/** The REST API of one platform, with a bearer token. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  url(path: string, query: ApiOptions['query'] = {}): string {
    const url = new URL(path, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.href;
  }

  /** The answer whatever its status (the caller decides). */
  async raw(method: string, path: string, options: ApiOptions = {}): Promise<RawAnswer> {
    let res: Response;
    try {
      res = await fetch(this.url(path, options.query), {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        redirect: 'manual',
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ClientError(
        `cannot reach ${this.baseUrl}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
        EXIT.unavailable,
      );
    }
    return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
  }

  /** A JSON answer; an error answer becomes a ClientError with the API's code, reason and message. */
  async request<T = unknown>(method: string, path: string, options: ApiOptions = {}): Promise<T> {
    const answer = await this.raw(method, path, options);
    const text = answer.bytes.toString('utf8');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (answer.status >= 400) throw apiError(answer.status, body);
    return body as T;
  }

  /** Whether the server offers an operation (its OpenAPI document lists it). */
  async offers(method: string, path: string): Promise<boolean> {
    const doc = await this.request<{ paths?: Record<string, Record<string, unknown>> }>(
      'GET',
      '/api/openapi.json',
    );
    return Boolean(doc.paths?.[path]?.[method.toLowerCase()]);
  }
}

export function apiError(status: number, body: unknown): ClientError {
  const error = (body as { error?: { code?: string; reason?: string; message?: string } } | undefined)?.error;
  const what = error
    ? `${error.message ?? 'error'} (${[error.code, error.reason].filter(Boolean).join(', ')})`
    : `HTTP ${status}`;
  return new ClientError(what, exitCodeFor(status), body);
}

/** The platform and token to use: `--url`, then PLATFORM_URL/PLATFORM_TOKEN, then the stored login. */
export function connect(urlOption: string | undefined, env: NodeJS.ProcessEnv = process.env): ApiClient {
  const login = readLogin(env);
  const url = urlOption ?? env.PLATFORM_URL ?? login?.url;
  const token =
    env.PLATFORM_TOKEN ?? (login && (!urlOption || urlOption === login.url) ? login.token : undefined);
  if (!url || !token)
    throw new ClientError(
      'not logged in: run `platform login <url>` (or set PLATFORM_URL and PLATFORM_TOKEN)',
      EXIT.unauthenticated,
    );
  return new ApiClient(url, token);
}
