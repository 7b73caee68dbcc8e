export type { HandlerErrorReporter } from './deliver.js';
export { MemoryPubSub, type MemoryPubSubOptions } from './memory.js';
export { PostgresPubSub, type PostgresPubSubOptions } from './postgres.js';
export type { PubSub, PubSubHandler } from './types.js';
export { ValkeyPubSub, type ValkeyPubSubOptions } from './valkey.js';
