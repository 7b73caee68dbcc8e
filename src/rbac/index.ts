export type { InvalidationMessage, ProjectAccess } from './access.js';
export { buildRbacService, createRbacModule } from './module.js';
export { bindRoleByName } from './queries.js';
export { RBAC_REASONS } from './reasons.js';
export type { EffectivePermissions } from './resolution.js';
export { rbacRoutes } from './routes.js';
export { RbacService } from './service.js';
