/**
 * The typed API client: paths, bodies, queries and answers come from `schema.d.ts`, generated from
 * docs/openapi.json by `npm run web:api` (CI checks it is up to date). Same-origin fetch with the
 * session cookie; a 401 sends the user to the login page and back.
 */
import type { components, paths } from './schema';

export type S = components['schemas'];
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type Json<X> = X extends { content: { 'application/json': infer J } } ? J : undefined;
type Responses<O> = O extends { responses: infer R } ? R : never;
type Success<R> = R extends { 200: infer X }
  ? X
  : R extends { 201: infer X }
    ? X
    : R extends { 202: infer X }
      ? X
      : R extends { 204: infer X }
        ? X
        : never;
export type Answer<P extends keyof paths, M extends Method> = Json<Success<Responses<Op<P, M>>>>;
type BodyOf<O> = O extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;
type QueryOf<O> = O extends { parameters: { query?: infer Q } } ? Q : never;

export interface CallOptions<P extends keyof paths, M extends Method> {
  path?: Record<string, string | number>;
  query?: QueryOf<Op<P, M>>;
  body?: BodyOf<Op<P, M>>;
}

/** The stable error body of the API, as an exception. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly reason?: string,
    readonly details: { path?: string; message?: string; [k: string]: unknown }[] = [],
  ) {
    super(message);
  }
}

/** Set by the app: what to do when the session is gone (go to login, then back). */
export const session = { onUnauthorized: (): void => {} };

export function fillPath(template: string, params: Record<string, string | number> = {}): string {
  return template.replace(/\{(\w+)\}/g, (_m, k: string) => {
    const v = params[k];
    if (v === undefined) throw new Error(`missing path parameter ${k}`);
    return encodeURIComponent(String(v));
  });
}

export function queryString(query: Record<string, unknown> | undefined): string {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function api<P extends keyof paths, M extends Method>(
  method: M,
  path: P,
  opts: CallOptions<P, M> = {},
): Promise<Answer<P, M>> {
  const url = fillPath(path as string, opts.path) + queryString(opts.query as Record<string, unknown>);
  const init: RequestInit = { method: method.toUpperCase(), headers: { accept: 'application/json' } };
  if (opts.body !== undefined) {
    init.headers = { ...init.headers, 'content-type': 'application/json' };
    init.body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch {
    throw new ApiError(0, 'network', 'the server did not answer (network error)');
  }
  if (res.status === 204) return undefined as Answer<P, M>;
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const e = (body as { error?: { code?: string; message?: string; reason?: string; details?: [] } })?.error;
    const err = new ApiError(
      res.status,
      e?.code ?? 'error',
      e?.message ?? `HTTP ${res.status}`,
      e?.reason,
      e?.details,
    );
    if (res.status === 401 && path !== '/api/auth/login') session.onUnauthorized();
    throw err;
  }
  return body as Answer<P, M>;
}

/** Plain-text GET (raw files, logs) with the same error handling. */
export async function getText(url: string): Promise<{ text: string; headers: Headers }> {
  const res = await fetch(url, { headers: { accept: 'text/plain' } });
  if (!res.ok) {
    if (res.status === 401) session.onUnauthorized();
    throw new ApiError(res.status, 'error', `HTTP ${res.status}`);
  }
  return { text: await res.text(), headers: res.headers };
}
