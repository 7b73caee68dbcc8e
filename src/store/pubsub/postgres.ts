import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { encodeJson } from '../cache/index.js';
import { type HandlerErrorReporter, invokeHandler, warnOnHandlerError } from './deliver.js';
import type { PubSub, PubSubHandler } from './types.js';

/** The one PostgreSQL channel; the platform channel travels in the payload. */
const PG_CHANNEL = 'platform_pubsub';
/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_NOTIFY_BYTES = 7900;

export interface PostgresPubSubOptions {
  /** Runs `select pg_notify($1, $2)` (through the pool). */
  notify(channel: string, payload: string): Promise<void>;
  /** A dedicated connection for LISTEN. */
  connect(): Promise<pg.Client>;
  onHandlerError?: HandlerErrorReporter;
  /** Delay before re-listening after the LISTEN connection dropped. */
  reconnectMs?: number;
}

interface Envelope {
  /** Origin: the PostgresPubSub instance that published. */
  o: string;
  c: string;
  m: string;
}

/**
 * Pub/sub for the stores without Valkey (the embedded server, or PostgreSQL alone): subscribers in
 * this process get every message directly, in publish order, like MemoryPubSub; other processes on
 * the same database (a CLI command next to the running server, other instances) get it through
 * PostgreSQL LISTEN/NOTIFY. That is what makes `platform admin reset-password` take effect in the
 * running server at once: the identity invalidation reaches it here.
 *
 * NOTIFY carries at most ~8 kB: larger messages (log chunks) are delivered in-process only. NOTIFY is
 * transactional and fire-and-forget: a message published while the LISTEN connection is down is lost
 * for this process, exactly as with Valkey.
 */
export class PostgresPubSub implements PubSub {
  readonly kind = 'postgres';
  private readonly id = randomUUID();
  private readonly channels = new Map<string, Set<{ handler: PubSubHandler }>>();
  private readonly onHandlerError: HandlerErrorReporter;
  private listener: Promise<pg.Client> | undefined;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PostgresPubSubOptions) {
    this.onHandlerError = options.onHandlerError ?? warnOnHandlerError;
  }

  async publish(channel: string, message: unknown): Promise<void> {
    this.assertOpen();
    const json = encodeJson(message, `message for channel ${channel}`);
    this.deliver(channel, json);
    const payload = JSON.stringify({ o: this.id, c: channel, m: json } satisfies Envelope);
    if (Buffer.byteLength(payload) <= MAX_NOTIFY_BYTES) await this.options.notify(PG_CHANNEL, payload);
  }

  async subscribe(channel: string, handler: PubSubHandler): Promise<() => Promise<void>> {
    this.assertOpen();
    await this.listen();
    const subscription = { handler };
    let set = this.channels.get(channel);
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
    }
    set.add(subscription);
    return async () => {
      const current = this.channels.get(channel);
      if (!current) return;
      current.delete(subscription);
      if (current.size === 0) this.channels.delete(channel);
    };
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await this.options.notify(`${PG_CHANNEL}_ping`, '');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    clearTimeout(this.reconnectTimer);
    const listener = this.listener;
    this.listener = undefined;
    if (listener) await listener.then((c) => c.end()).catch(() => {});
  }

  private deliver(channel: string, json: string): void {
    const subscriptions = this.channels.get(channel);
    if (!subscriptions) return;
    for (const subscription of subscriptions) {
      setImmediate(() => {
        if (!this.channels.get(channel)?.has(subscription)) return;
        invokeHandler(subscription.handler, JSON.parse(json), channel, this.onHandlerError);
      });
    }
  }

  /** One LISTEN connection per instance, opened on the first subscription, re-opened when lost. */
  private listen(): Promise<pg.Client> {
    if (this.listener) return this.listener;
    const opening = (async () => {
      const client = await this.options.connect();
      client.on('notification', (n) => {
        if (n.channel !== PG_CHANNEL || !n.payload) return;
        let envelope: Envelope;
        try {
          envelope = JSON.parse(n.payload) as Envelope;
        } catch {
          return;
        }
        if (envelope.o === this.id) return; // delivered directly at publish
        this.deliver(envelope.c, envelope.m);
      });
      const lost = () => {
        if (this.listener !== opening) return;
        this.listener = undefined;
        if (this.closed) return;
        this.reconnectTimer = setTimeout(() => {
          if (!this.closed && this.channels.size > 0) this.listen().catch(lost);
        }, this.options.reconnectMs ?? 1000);
        this.reconnectTimer.unref();
      };
      client.on('error', lost);
      client.on('end', lost);
      await client.query(`listen ${PG_CHANNEL}`);
      return client;
    })();
    this.listener = opening;
    opening.catch(() => {
      if (this.listener === opening) this.listener = undefined;
    });
    return opening;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('PostgresPubSub is closed');
  }
}
