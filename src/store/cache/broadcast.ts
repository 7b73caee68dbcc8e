import type { PubSub } from '../pubsub/types.js';
import type { Cache } from './types.js';

const CHANNEL = 'cache.delete';

type Deletion = { key: string } | { prefix: string };

/**
 * The in-process cache for stores without Valkey, made safe for more than one process on one
 * database (a CLI command beside the running server): deletions — the cache's invalidations — are
 * also published, and every other process applies them to its own copy. Values stay per process.
 * Each deletion is published (awaited) before the caller goes on, so an invalidation message the
 * caller sends next reaches the others after it.
 */
export class BroadcastCache implements Cache {
  readonly kind = 'memory';
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    private readonly local: Cache,
    private readonly pubsub: PubSub,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.pubsub.subscribe(CHANNEL, (message) => {
      const m = message as Deletion;
      // Own deletions come back too (in-process delivery): deleting again is harmless.
      void ('key' in m ? this.local.delete(m.key) : this.local.deleteByPrefix(m.prefix));
    });
  }

  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.local.get<T>(key);
  }
  set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    return this.local.set(key, value, ttlSeconds);
  }
  async delete(key: string): Promise<void> {
    await this.local.delete(key);
    await this.pubsub.publish(CHANNEL, { key } satisfies Deletion);
  }
  async deleteByPrefix(prefix: string): Promise<void> {
    await this.local.deleteByPrefix(prefix);
    await this.pubsub.publish(CHANNEL, { prefix } satisfies Deletion);
  }
  increment(key: string, ttlSeconds: number): Promise<number> {
    return this.local.increment(key, ttlSeconds);
  }
  ttl(key: string): Promise<number | undefined> {
    return this.local.ttl(key);
  }
  ping(): Promise<void> {
    return this.local.ping();
  }
  async close(): Promise<void> {
    await this.unsubscribe?.().catch(() => {});
    await this.local.close();
  }
}
