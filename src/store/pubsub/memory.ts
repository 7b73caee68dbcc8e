import { encodeJson } from '../cache/index.js';
import { type HandlerErrorReporter, invokeHandler, warnOnHandlerError } from './deliver.js';
import type { PubSub, PubSubHandler } from './types.js';

export interface MemoryPubSubOptions {
  /** Called when a handler throws or rejects. Default: a process warning. */
  onHandlerError?: HandlerErrorReporter;
}

/** One registration; the same handler subscribed twice is two subscriptions. */
interface Subscription {
  handler: PubSubHandler;
}

/**
 * In-process pub/sub (single instance). Delivery is asynchronous and in publish order, and each
 * receiver gets its own copy decoded from JSON — the same contract as ValkeyPubSub, so code that
 * works here does not rely on shared objects or synchronous delivery.
 */
export class MemoryPubSub implements PubSub {
  readonly kind = 'memory';
  private readonly channels = new Map<string, Set<Subscription>>();
  private readonly onHandlerError: HandlerErrorReporter;
  private closed = false;

  constructor(options: MemoryPubSubOptions = {}) {
    this.onHandlerError = options.onHandlerError ?? warnOnHandlerError;
  }

  async publish(channel: string, message: unknown): Promise<void> {
    this.assertOpen();
    const json = encodeJson(message, `message for channel ${channel}`);
    const subscriptions = this.channels.get(channel);
    if (subscriptions === undefined) return;
    for (const subscription of subscriptions) {
      // setImmediate (not a microtask): a handler that publishes cannot starve I/O.
      setImmediate(() => {
        // Unsubscribed after publish but before delivery: no delivery, as over the network.
        if (!this.channels.get(channel)?.has(subscription)) return;
        invokeHandler(subscription.handler, JSON.parse(json), channel, this.onHandlerError);
      });
    }
  }

  async subscribe(channel: string, handler: PubSubHandler): Promise<() => Promise<void>> {
    this.assertOpen();
    const subscription: Subscription = { handler };
    let subscriptions = this.channels.get(channel);
    if (subscriptions === undefined) {
      subscriptions = new Set();
      this.channels.set(channel, subscriptions);
    }
    subscriptions.add(subscription);
    return async () => {
      const current = this.channels.get(channel);
      if (current === undefined) return;
      current.delete(subscription);
      if (current.size === 0) this.channels.delete(channel);
    };
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('MemoryPubSub is closed');
  }
}
