export type { CommitChecks, MergeRequestCheck } from './context.js';
export type * from './events.js';
export { createMergeRequestsModule, MERGE_RECOVERY_LOOP } from './module.js';
export { MR_REASONS } from './reasons.js';
export { MergeRequestsService, type MergeRequestView, type MergeStrategy } from './service.js';
