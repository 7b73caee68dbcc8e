import { closeValkey, connectValkey, encodeJson, pingValkey, type ValkeyConnection } from '../cache/index.js';
import { type HandlerErrorReporter, invokeHandler, warnOnHandlerError } from './deliver.js';
import type { PubSub, PubSubHandler } from './types.js';

export interface ValkeyPubSubOptions {
  /** Prepended to every channel name. Default `platform:`. */
  channelPrefix?: string;
  /** Called when a handler throws or rejects, or a message is not JSON. Default: a process warning. */
  onHandlerError?: HandlerErrorReporter;
}

interface Subscription {
  handler: PubSubHandler;
}

interface ChannelState {
  subscriptions: Set<Subscription>;
  /** Settles when the server acknowledged SUBSCRIBE for this channel. */
  active: Promise<void>;
}

/**
 * Pub/sub over Valkey: one connection publishes, one (in subscriber mode) receives; each channel is
 * SUBSCRIBEd once however many local handlers it has. The client re-subscribes after a reconnect;
 * messages published while disconnected are lost (fire-and-forget, like Valkey itself).
 */
export class ValkeyPubSub implements PubSub {
  readonly kind = 'valkey';
  private readonly publisher: ValkeyConnection;
  private readonly subscriber: ValkeyConnection;
  private readonly channelPrefix: string;
  private readonly onHandlerError: HandlerErrorReporter;
  /** Keyed by the full (prefixed) channel name. */
  private readonly channels = new Map<string, ChannelState>();

  constructor(url: string, options: ValkeyPubSubOptions = {}) {
    this.channelPrefix = options.channelPrefix ?? 'platform:';
    this.onHandlerError = options.onHandlerError ?? warnOnHandlerError;
    this.publisher = connectValkey(url, 'platform-publisher');
    this.subscriber = connectValkey(url, 'platform-subscriber');
    this.subscriber.client.on('message', (fullChannel: string, text: string) =>
      this.dispatch(fullChannel, text),
    );
  }

  async publish(channel: string, message: unknown): Promise<void> {
    const json = encodeJson(message, `message for channel ${channel}`);
    await this.publisher.client.publish(this.channelPrefix + channel, json);
  }

  async subscribe(channel: string, handler: PubSubHandler): Promise<() => Promise<void>> {
    const fullChannel = this.channelPrefix + channel;
    const subscription: Subscription = { handler };
    let state = this.channels.get(fullChannel);
    if (state === undefined) {
      const created: ChannelState = {
        subscriptions: new Set(),
        active: this.subscriber.client.subscribe(fullChannel).then(() => undefined),
      };
      state = created;
      this.channels.set(fullChannel, created);
      created.active.catch(() => {
        if (this.channels.get(fullChannel) === created) this.channels.delete(fullChannel);
      });
    }
    state.subscriptions.add(subscription);
    try {
      await state.active;
    } catch (err) {
      state.subscriptions.delete(subscription);
      throw err;
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      const current = this.channels.get(fullChannel);
      if (current === undefined || !current.subscriptions.delete(subscription)) return;
      if (current.subscriptions.size > 0) return;
      this.channels.delete(fullChannel);
      // Commands on one connection run in order, so a SUBSCRIBE issued after this still wins.
      await this.subscriber.client.unsubscribe(fullChannel);
    };
  }

  async ping(): Promise<void> {
    await pingValkey(this.publisher, 'Valkey pub/sub');
  }

  async close(): Promise<void> {
    this.channels.clear();
    await Promise.all([closeValkey(this.publisher), closeValkey(this.subscriber)]);
  }

  private dispatch(fullChannel: string, text: string): void {
    const state = this.channels.get(fullChannel);
    if (state === undefined) return;
    for (const subscription of state.subscriptions) {
      let message: unknown;
      try {
        // Decoded per handler so receivers never share an object.
        message = JSON.parse(text);
      } catch (err) {
        this.onHandlerError(err, fullChannel.slice(this.channelPrefix.length));
        return;
      }
      invokeHandler(
        subscription.handler,
        message,
        fullChannel.slice(this.channelPrefix.length),
        this.onHandlerError,
      );
    }
  }
}
