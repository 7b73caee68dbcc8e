import type { ModuleContext, PlatformModule } from '../core/module.js';
import { auditRoutes } from './routes.js';

/** The audit feed. Writing audit rows is `core/audit.ts` (every module writes its own, in its transaction). */
export function createAuditModule(ctx: ModuleContext): PlatformModule<null> {
  return { name: 'audit', service: null, routes: auditRoutes(ctx.drivers.db.db) };
}
