export { createProjectsModule } from './module.js';
export { projectName, projectRoutes, RESERVED_PROJECT_NAMES } from './routes.js';
export {
  isValidBranchName,
  type ProjectRow,
  ProjectsService,
  type ProjectView,
  type Visibility,
} from './service.js';
