export type * from './events.js';
export { createDeployerModule, DeployerService } from './module.js';
export { type Publication, type RecordedDeployment, recordPublication } from './queries.js';
