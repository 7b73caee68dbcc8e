import type { Logger } from 'pino';
import { AppError, unauthorized } from '../core/errors.js';
import type { Principal } from '../core/http.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import { API_TOKEN_PREFIX, digestSecret, SESSION_COOKIE } from './credentials.js';
import { checkPassword, type FailureLimiter } from './passwords.js';
import { sessionByDigest, tokenByDigest, touchSession, touchToken } from './queries.js';
import { AUTH_REASONS } from './reasons.js';
import type { UserType } from './schemas.js';

/** What authentication reads of a request: plain header values, so no HTTP framework leaks in. */
export interface RequestCredentials {
  authorization?: string | undefined;
  cookie?: string | undefined;
}

export const PRINCIPAL_CACHE_MS = 30_000;
const LAST_USED_THROTTLE_MS = 60_000;

export const invalidCredentials = () =>
  new AppError(401, 'unauthorized', 'invalid name or password').because(AUTH_REASONS.invalidCredentials);

interface CachedPrincipal {
  principal: Principal;
  /** Epoch ms of the credential's own expiry. */
  credentialExpires: number | null;
  cachedUntil: number;
}

/**
 * Who a request is, from its Authorization header or session cookie and its client address:
 * bearer tokens, session cookies and HTTP Basic (a password, or a token as the password). Resolved
 * principals are cached briefly per credential and dropped on every identity invalidation.
 */
export class Authenticator {
  private readonly principals = new Map<string, CachedPrincipal>();
  private readonly lastUsedWrites = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly limiter: FailureLimiter,
    rbac: RbacService,
    private readonly log: Logger,
  ) {
    rbac.onInvalidate((message) => {
      if ('all' in message) this.principals.clear();
      else if ('userId' in message) {
        for (const [key, entry] of this.principals)
          if (entry.principal.userId === message.userId) this.principals.delete(key);
      }
    });
  }

  async authenticate(credentials: RequestCredentials, ip: string): Promise<Principal | null> {
    const header = credentials.authorization;
    if (header) {
      const [scheme, value = ''] = header.split(/\s+/, 2);
      if (scheme?.toLowerCase() === 'bearer') return this.authenticateSecret(value.trim(), ip, null);
      if (scheme?.toLowerCase() === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0)
          throw unauthorized('malformed Basic credentials').because(AUTH_REASONS.malformedCredentials);
        return this.authenticateBasic(decoded.slice(0, colon), decoded.slice(colon + 1), ip);
      }
      throw unauthorized('unsupported Authorization scheme (use Bearer or Basic)').because(
        AUTH_REASONS.malformedCredentials,
      );
    }
    const cookie = readCookie(credentials.cookie, SESSION_COOKIE);
    if (cookie) return this.authenticateSecret(cookie, ip, null, true);
    return null;
  }

  private async authenticateBasic(name: string, secret: string, ip: string): Promise<Principal> {
    if (secret.startsWith(API_TOKEN_PREFIX)) return this.authenticateSecret(secret, ip, name);
    const key = `basic:${digestSecret(`${name.toLowerCase()}\u0000${secret}`)}`;
    const cached = this.fromCache(key);
    if (cached) return cached;
    const user = await checkPassword(this.db, this.limiter, name, secret, ip);
    if (!user?.is_active || user.user_type !== 'human') {
      if (user) await this.limiter.countFailure(this.limiter.keys('login', ip, name));
      throw invalidCredentials();
    }
    const principal: Principal = { userId: user.id, userName: user.name, userType: 'human' };
    this.principals.set(key, {
      principal,
      credentialExpires: null,
      cachedUntil: Date.now() + PRINCIPAL_CACHE_MS,
    });
    return principal;
  }

  private fromCache(key: string): Principal | undefined {
    const entry = this.principals.get(key);
    if (!entry) return undefined;
    const now = Date.now();
    if (entry.cachedUntil <= now || (entry.credentialExpires !== null && entry.credentialExpires <= now)) {
      this.principals.delete(key);
      return undefined;
    }
    return entry.principal;
  }

  /** A bearer token, a session cookie or a token given as a Basic password (then `expectedName` must match). */
  private async authenticateSecret(
    secret: string,
    ip: string,
    expectedName: string | null,
    isSession = false,
  ): Promise<Principal> {
    const digest = digestSecret(secret);
    const sameName = (p: Principal) =>
      expectedName === null || p.userName.toLowerCase() === expectedName.toLowerCase();
    const cached = this.fromCache(digest);
    if (cached && sameName(cached)) {
      this.touch(cached);
      return cached;
    }
    const keys = this.limiter.keys('token', ip);
    await this.limiter.assertNotLimited(keys);
    const lookup = isSession
      ? await this.session(digest)
      : secret.startsWith(API_TOKEN_PREFIX)
        ? await this.token(digest)
        : { found: undefined, expired: false };
    const { found, expired } = lookup;
    if (!found || !sameName(found.principal)) {
      await this.limiter.countFailure(keys);
      if (isSession)
        throw unauthorized('session expired or invalid; sign in again').because(AUTH_REASONS.sessionExpired);
      throw unauthorized('invalid, expired or revoked token').because(
        expired && found === undefined ? AUTH_REASONS.tokenExpired : AUTH_REASONS.tokenInvalid,
      );
    }
    this.principals.set(digest, found);
    this.touch(found.principal);
    return found.principal;
  }

  private async session(digest: string): Promise<{ found?: CachedPrincipal | undefined; expired: boolean }> {
    const row = await sessionByDigest(this.db, digest);
    const expires = row ? new Date(row.expires_at).getTime() : 0;
    if (!row?.is_active || expires <= Date.now()) return { expired: row !== undefined };
    return {
      found: {
        principal: {
          userId: row.user_id,
          userName: row.name,
          userType: row.user_type as UserType,
          sessionId: row.id,
        },
        credentialExpires: expires,
        cachedUntil: Date.now() + PRINCIPAL_CACHE_MS,
      },
      expired: false,
    };
  }

  private async token(digest: string): Promise<{ found?: CachedPrincipal | undefined; expired: boolean }> {
    const row = await tokenByDigest(this.db, digest);
    if (!row) return { expired: false };
    const expires = row.expires_at ? new Date(row.expires_at).getTime() : null;
    // Only a live token of an active user counts as "expired": a revoked one stays "invalid".
    const expired = expires !== null && expires <= Date.now();
    if (!row.is_active || row.revoked_at || expired)
      return { expired: expired && row.is_active && !row.revoked_at };
    return {
      found: {
        principal: {
          userId: row.user_id,
          userName: row.name,
          userType: row.user_type as UserType,
          token: {
            id: row.id,
            scopes: row.scopes,
            projectId: row.project_id,
            expiresAt: row.expires_at ? new Date(row.expires_at) : null,
          },
        },
        credentialExpires: expires,
        cachedUntil: Date.now() + PRINCIPAL_CACHE_MS,
      },
      expired: false,
    };
  }

  /** Records last use of a token or session, at most once a minute per credential per instance. */
  private touch(principal: Principal): void {
    const id = principal.token?.id ?? principal.sessionId;
    if (!id) return;
    const now = Date.now();
    if ((this.lastUsedWrites.get(id) ?? 0) > now - LAST_USED_THROTTLE_MS) return;
    this.lastUsedWrites.set(id, now);
    const write = principal.token ? touchToken(this.db, id) : touchSession(this.db, id);
    write.catch((err: unknown) => this.log.warn({ err }, 'could not record credential use'));
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}
