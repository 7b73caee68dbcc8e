import { encodeJson, ttlToMilliseconds } from './json.js';
import type { Cache } from './types.js';

export interface MemoryCacheOptions {
  /** How often expired entries are swept out (reads also drop them lazily). Default 60 s. */
  sweepIntervalMs?: number;
}

interface Entry {
  /** Stored as JSON text so callers never share (and mutate) the cached object. */
  json: string;
  /** performance.now() deadline; undefined = no expiry. */
  expiresAt: number | undefined;
}

/** In-process cache for single-instance deployments and tests; same semantics as ValkeyCache. */
export class MemoryCache implements Cache {
  readonly kind = 'memory';
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryCacheOptions = {}) {
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const entry = this.live(key);
    return entry === undefined ? undefined : (JSON.parse(entry.json) as T);
  }

  async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const json = encodeJson(value, `cache value for ${key}`);
    const expiresAt = ttlSeconds === undefined ? undefined : now() + ttlToMilliseconds(ttlSeconds);
    this.entries.set(key, { json, expiresAt });
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async deleteByPrefix(prefix: string): Promise<void> {
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  async increment(key: string, ttlSeconds: number): Promise<number> {
    const ttlMs = ttlToMilliseconds(ttlSeconds);
    const entry = this.live(key);
    if (entry === undefined) {
      this.entries.set(key, { json: '1', expiresAt: now() + ttlMs });
      return 1;
    }
    const current: unknown = JSON.parse(entry.json);
    if (typeof current !== 'number' || !Number.isSafeInteger(current)) {
      throw new TypeError(`cache value for ${key} is not an integer counter`);
    }
    entry.json = String(current + 1);
    // Like the Valkey script: a counter that somehow has no expiry gets one, an existing one is kept.
    entry.expiresAt ??= now() + ttlMs;
    return current + 1;
  }

  async ttl(key: string): Promise<number | undefined> {
    const entry = this.live(key);
    if (entry?.expiresAt === undefined) return undefined;
    return Math.max(1, Math.ceil((entry.expiresAt - now()) / 1000));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private sweep(): void {
    const at = now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt !== undefined && entry.expiresAt <= at) this.entries.delete(key);
    }
  }
}

/** Monotonic: wall-clock jumps must not expire or resurrect entries. */
function now(): number {
  return performance.now();
}
