import type { IncomingHttpHeaders } from 'node:http';

const MUTATING_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Whether a cookie-authenticated request may change something. SameSite=Strict already keeps the
 * session cookie off cross-site requests in current browsers; this is the second line (older
 * browsers, same-site but cross-origin pages, a cookie set without SameSite by a proxy): the browser
 * must say where the request comes from, and that must be the platform itself (or an allowed CORS
 * origin). A request with neither Origin nor Sec-Fetch-Site is refused: every browser sends one of
 * them on a mutation, and non-browser clients authenticate with tokens, which this does not affect.
 */
export function cookieMutationAllowed(
  method: string,
  headers: IncomingHttpHeaders,
  allowedOrigins: ReadonlySet<string>,
): boolean {
  if (!MUTATING_METHODS.has(method)) return true;
  const origin = headers.origin;
  if (typeof origin === 'string' && origin !== 'null') return allowedOrigins.has(origin.toLowerCase());
  return headers['sec-fetch-site'] === 'same-origin';
}

/** The origins a cookie-authenticated mutation may come from: the public URL's and the CORS allow-list. */
export function trustedOrigins(publicUrl: string, corsOrigins: readonly string[]): Set<string> {
  const origins = new Set<string>([new URL(publicUrl).origin.toLowerCase()]);
  for (const o of corsOrigins) {
    try {
      origins.add(new URL(o).origin.toLowerCase());
    } catch {
      // not a URL: config validation reports it; it cannot match an Origin header anyway
    }
  }
  return origins;
}

/**
 * The request URL as logged: without its query string when that carries a signature (presigned
 * object URLs: the query string is the credential), else as is.
 */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  return /(^|[?&])(signature|x-amz-signature|x-amz-credential|x-amz-security-token)=/i.test(url.slice(q))
    ? `${url.slice(0, q)}?[redacted]`
    : url;
}
