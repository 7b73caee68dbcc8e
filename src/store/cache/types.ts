/** Key/value cache with TTLs and atomic counters. Values are JSON-serialisable. */
export interface Cache {
  readonly kind: 'memory' | 'valkey';
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** ttlSeconds omitted → no expiry. */
  set(key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Deletes every key starting with prefix. */
  deleteByPrefix(prefix: string): Promise<void>;
  /**
   * Atomically increments a counter and returns the new value. The TTL is set when the counter is
   * created (first increment) and not extended by later increments: a fixed window.
   */
  increment(key: string, ttlSeconds: number): Promise<number>;
  /** Remaining TTL of a key in seconds, or undefined when missing / no expiry. */
  ttl(key: string): Promise<number | undefined>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
