export { createProjectsModule } from './module.js';
export { allocateNumber, type NumberedKind } from './numbers.js';
export {
  evaluateProtection,
  loadProtectionRules,
  type Mover,
  type ProtectionBlocker,
  type ProtectionRule,
  type ProtectionVerdict,
  pushPolicy,
} from './protection.js';
export { projectName, projectRoutes, RESERVED_PROJECT_NAMES } from './routes.js';
export {
  isValidBranchName,
  type ProjectRow,
  ProjectsService,
  type ProjectView,
  type Visibility,
} from './service.js';
