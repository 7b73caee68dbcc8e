export type PubSubHandler = (message: unknown) => void;

/** Fire-and-forget publish/subscribe between instances. Messages are JSON-serialisable. */
export interface PubSub {
  readonly kind: 'memory' | 'valkey' | 'postgres';
  publish(channel: string, message: unknown): Promise<void>;
  /** Resolves once the subscription is active; returns the unsubscribe function. */
  subscribe(channel: string, handler: PubSubHandler): Promise<() => Promise<void>>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
