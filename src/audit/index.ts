export { createAuditModule } from './module.js';
export { auditRoutes } from './routes.js';
