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
export { ProtectionRulesService } from './protection-rules.js';
export { PROJECT_REASONS } from './reasons.js';
export { projectRoutes } from './routes.js';
export {
  isReservedProjectName,
  ProjectSchema,
  type ProjectView,
  projectName,
  RESERVED_PROJECT_NAMES,
  type ViewOf,
  type Visibility,
} from './schemas.js';
export { isValidBranchName, type ProjectRow, ProjectsService } from './service.js';
