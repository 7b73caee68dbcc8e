export { createProjectsModule } from './module.js';
export { allocateNumber, type NumberedKind } from './numbers.js';
export {
  type BranchProtection,
  branchProtection,
  loadProtectionRules,
  type ProtectionRule,
  pushPolicy,
  ruleRestrictions,
} from './protection.js';
export { projectName, projectRoutes, RESERVED_PROJECT_NAMES } from './routes.js';
export {
  isValidBranchName,
  type ProjectRow,
  ProjectsService,
  type ProjectView,
  type Visibility,
} from './service.js';
