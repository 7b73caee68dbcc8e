export { BroadcastCache } from './broadcast.js';
export { encodeJson } from './json.js';
export { MemoryCache, type MemoryCacheOptions } from './memory.js';
export type { Cache } from './types.js';
export { ValkeyCache, type ValkeyCacheOptions } from './valkey.js';
export { closeValkey, connectValkey, pingValkey, type ValkeyConnection } from './valkey-connection.js';
