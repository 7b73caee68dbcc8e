export { OBSERVE_LOGS_CHANNEL } from './ingest.js';
export { createObserveModule } from './module.js';
export { PlatformLogTap } from './platform-logs.js';
export type { LogFilter, LogView } from './queries.js';
export { logConditions } from './queries.js';
export { OBSERVE_REASONS } from './reasons.js';
export { logFilterOf } from './routes.js';
export { logFilterQuery, logView } from './schemas.js';
export { ObserveService } from './service.js';
