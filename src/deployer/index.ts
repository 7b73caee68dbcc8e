export type * from './events.js';
export { announcePublication } from './events.js';
export { createDeployerModule, DEPLOY_LOOPS, type DeployerDeps, DeployerService } from './module.js';
export { type Publication, type RecordedDeployment, recordPublication } from './queries.js';
export { DEPLOY_REASONS } from './reasons.js';
