import { rateLimited } from '../core/errors.js';
import type { Cache } from '../store/cache/types.js';
import type { Db } from '../store/db.js';
import type { UserRow } from '../store/schema.js';
import { dummyPasswordHash, verifyPassword } from './credentials.js';
import { findUserByName } from './queries.js';
import { AUTH_REASONS } from './reasons.js';

export interface RateLimitSettings {
  rateLimit: number;
  rateWindowSeconds: number;
}

/**
 * Failure counting in the shared cache, per client address and per user name (so neither many
 * addresses against one name nor one address against many names gets unlimited guesses).
 */
export class FailureLimiter {
  constructor(
    private readonly cache: Cache,
    private readonly settings: RateLimitSettings,
  ) {}

  keys(kind: 'login' | 'token', ip: string, name?: string): string[] {
    return [`ratelimit:${kind}:ip:${ip}`, ...(name ? [`ratelimit:${kind}:name:${name.toLowerCase()}`] : [])];
  }

  async assertNotLimited(keys: string[]): Promise<void> {
    for (const key of keys) {
      const count = await this.cache.get<number>(key);
      if (typeof count === 'number' && count >= this.settings.rateLimit) {
        const ttl = (await this.cache.ttl(key)) ?? this.settings.rateWindowSeconds;
        throw rateLimited(Math.max(1, Math.ceil(ttl))).because(AUTH_REASONS.rateLimited);
      }
    }
  }

  async countFailure(keys: string[]): Promise<void> {
    for (const key of keys) await this.cache.increment(key, this.settings.rateWindowSeconds);
  }

  /** A successful login forgives the name's failures (not the address's). */
  async forgiveName(kind: 'login', name: string): Promise<void> {
    await this.cache.delete(`ratelimit:${kind}:name:${name.toLowerCase()}`);
  }
}

/**
 * The one password check (login, HTTP Basic, `old_password`): refused with 429 while the address or
 * the name is over the failure limit, exactly one argon2 verification (against a dummy hash when
 * the user is unknown, so timing tells nothing), and every failure counted against both.
 */
export async function checkPassword(
  db: Db,
  limiter: FailureLimiter,
  name: string,
  password: string,
  ip: string,
): Promise<UserRow | undefined> {
  const keys = limiter.keys('login', ip, name);
  await limiter.assertNotLimited(keys);
  const user = await findUserByName(db, name);
  const ok = await verifyPassword(user?.password_hash ?? (await dummyPasswordHash()), password);
  if (!user || !ok || !user.password_hash) {
    await limiter.countFailure(keys);
    return undefined;
  }
  return user;
}
