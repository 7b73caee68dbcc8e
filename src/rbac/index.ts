export { buildRbacService, createRbacModule } from './module.js';
export { rbacRoutes } from './routes.js';
export { type EffectivePermissions, type InvalidationMessage, RbacService } from './service.js';
