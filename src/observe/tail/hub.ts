import type { Logger } from 'pino';
import type { PubSub } from '../../store/pubsub/index.js';
import { TAIL_DEMAND_REFRESH_MS, tailDemandChannel } from '../ingest.js';
import type { LiveLogEntry } from '../query-lang/index.js';

export type DropKind = 'slow_consumer' | 'shutdown' | 'error';

/** What a live-tail connection (SSE or WebSocket) offers the hub. */
export interface TailClient {
  matches(e: LiveLogEntry): boolean;
  /** Bytes written but not yet taken by the peer: the hub drops the client past the limit. */
  backlog(): number;
  send(entries: LiveLogEntry[]): void;
  /** Ends the connection with a reason the client can read. */
  drop(kind: DropKind, reason: string): void;
}

export interface TailOptions {
  /** A client whose unsent backlog passes this is dropped (it never slows ingest down). */
  maxBacklogBytes: number;
  /** Connections one instance serves at once. */
  maxClients: number;
  heartbeatMs: number;
}

export const defaultTailOptions: TailOptions = {
  maxBacklogBytes: 1 << 20,
  maxClients: 500,
  heartbeatMs: 15_000,
};

/**
 * One PubSub subscription per instance to the ingest's `observe.logs` batches, fanned out to this
 * instance's tail connections. Delivery is synchronous writes into each connection's buffer and
 * never waits for a client: one that does not keep up is dropped, so ingest is never held.
 */
export class LiveTailHub {
  private readonly clients = new Set<TailClient>();
  private unsubscribe: (() => Promise<void>) | null = null;
  private demandTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pubsub: PubSub,
    private readonly channel: string,
    readonly options: TailOptions,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  async start(): Promise<void> {
    if (this.unsubscribe) return;
    this.unsubscribe = await this.pubsub.subscribe(this.channel, (message) => {
      const entries = (message as { entries?: LiveLogEntry[] } | null)?.entries;
      if (Array.isArray(entries) && entries.length > 0) this.deliver(entries);
    });
  }

  async stop(): Promise<void> {
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = null;
    for (const c of [...this.clients]) c.drop('shutdown', 'server shutting down');
    this.clients.clear();
    this.stopDemand();
    await unsubscribe?.().catch(() => {});
  }

  /** false when the instance serves its maximum of connections. */
  add(client: TailClient): boolean {
    if (this.clients.size >= this.options.maxClients) return false;
    this.clients.add(client);
    // Every opening announces itself (the ingest of every instance then publishes its batches), and
    // the announcement is refreshed while this instance has a tail open.
    this.announceDemand();
    if (!this.demandTimer) {
      this.demandTimer = setInterval(() => this.announceDemand(), TAIL_DEMAND_REFRESH_MS);
      this.demandTimer.unref();
    }
    return true;
  }

  remove(client: TailClient): void {
    this.clients.delete(client);
    if (this.clients.size === 0) this.stopDemand();
  }

  private announceDemand(): void {
    this.pubsub.publish(tailDemandChannel(this.channel), {}).catch((err) => {
      this.log.warn({ err }, 'live tail demand could not be announced');
    });
  }

  private stopDemand(): void {
    if (this.demandTimer) clearInterval(this.demandTimer);
    this.demandTimer = null;
  }

  private deliver(entries: LiveLogEntry[]): void {
    for (const client of [...this.clients]) {
      try {
        if (client.backlog() > this.options.maxBacklogBytes) {
          this.remove(client);
          client.drop(
            'slow_consumer',
            `slow consumer: more than ${this.options.maxBacklogBytes} bytes unread`,
          );
          continue;
        }
        const mine = entries.filter((e) => client.matches(e));
        if (mine.length) client.send(mine);
      } catch (err) {
        this.log.warn({ err }, 'live tail client failed; dropped');
        this.remove(client);
        client.drop('error', 'internal error');
      }
    }
  }
}
