export type * from './events.js';
export { createMergeRequestsModule } from './module.js';
export { MergeRequestsService, type MergeRequestView, type MergeStrategy } from './service.js';
