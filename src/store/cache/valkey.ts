import type { Redis } from 'iovalkey';
import { encodeJson, ttlToMilliseconds } from './json.js';
import type { Cache } from './types.js';
import { closeValkey, connectValkey, pingValkey, type ValkeyConnection } from './valkey-connection.js';

export interface ValkeyCacheOptions {
  /** Prepended to every key, so several platforms (or test runs) can share one server. Default `platform:`. */
  keyPrefix?: string;
}

const SCAN_BATCH = 500;

/**
 * INCR, and set the expiry only when the counter has none (i.e. it was just created): a fixed
 * window. One script so no other client can observe or race between the two steps.
 */
const INCREMENT_SCRIPT = `
local value = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return value
`;

type ScriptedRedis = Redis & { platformIncrement(key: string, ttlMs: number): Promise<number> };

export class ValkeyCache implements Cache {
  readonly kind = 'valkey';
  private readonly connection: ValkeyConnection;
  private readonly client: ScriptedRedis;
  private readonly keyPrefix: string;

  constructor(url: string, options: ValkeyCacheOptions = {}) {
    this.keyPrefix = options.keyPrefix ?? 'platform:';
    this.connection = connectValkey(url, 'platform-cache');
    // defineCommand sends EVALSHA and falls back to EVAL when the server has not cached the script.
    this.connection.client.defineCommand('platformIncrement', { numberOfKeys: 1, lua: INCREMENT_SCRIPT });
    this.client = this.connection.client as ScriptedRedis;
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const text = await this.client.get(this.k(key));
    return text === null ? undefined : (JSON.parse(text) as T);
  }

  async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const json = encodeJson(value, `cache value for ${key}`);
    if (ttlSeconds === undefined) await this.client.set(this.k(key), json);
    else await this.client.set(this.k(key), json, 'PX', ttlToMilliseconds(ttlSeconds));
  }

  async delete(key: string): Promise<void> {
    await this.client.unlink(this.k(key));
  }

  async deleteByPrefix(prefix: string): Promise<void> {
    const pattern = `${escapeGlob(this.k(prefix))}*`;
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_BATCH);
      cursor = next;
      if (keys.length > 0) await this.client.unlink(...keys);
    } while (cursor !== '0');
  }

  async increment(key: string, ttlSeconds: number): Promise<number> {
    return Number(await this.client.platformIncrement(this.k(key), ttlToMilliseconds(ttlSeconds)));
  }

  async ttl(key: string): Promise<number | undefined> {
    const ms = await this.client.pttl(this.k(key));
    // -2: no such key, -1: no expiry.
    return ms < 0 ? undefined : Math.max(1, Math.ceil(ms / 1000));
  }

  async ping(): Promise<void> {
    await pingValkey(this.connection, 'Valkey cache');
  }

  async close(): Promise<void> {
    await closeValkey(this.connection);
  }

  private k(key: string): string {
    return this.keyPrefix + key;
  }
}

/** SCAN MATCH is a glob: a literal prefix must not let `*`, `?`, `[` … match other keys. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\^]/g, '\\$&');
}
