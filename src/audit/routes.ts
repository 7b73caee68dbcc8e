import { z } from 'zod';
import { forbidden } from '../core/errors.js';
import { type AnyRouteDef, paginationQuery, route } from '../core/http.js';
import type { Db } from '../store/db.js';
import { listAudit, ownsProject } from './queries.js';
import { AuditListSchema } from './schemas.js';

export function auditRoutes(db: Db): AnyRouteDef[] {
  return [
    route({
      method: 'GET',
      url: '/api/audit',
      summary: 'The audit log (admin:users; a project owner may read their project with ?project_id=)',
      tags: ['audit'],
      access: 'authenticated',
      query: paginationQuery.extend({
        actor_id: z.uuid().optional(),
        actor: z.string().max(200).optional(),
        action: z.string().max(100).optional(),
        resource_type: z.string().max(100).optional(),
        resource_id: z.string().max(200).optional(),
        project_id: z.uuid().optional(),
        since: z.coerce.date().optional(),
        until: z.coerce.date().optional(),
      }),
      response: AuditListSchema,
      handler: async ({ query, can, requirePrincipal }) => {
        const principal = requirePrincipal();
        if (!(await can('admin:users'))) {
          const owned = query.project_id ? await ownsProject(db, principal.userId, query.project_id) : false;
          if (!owned || (principal.token?.projectId && principal.token.projectId !== query.project_id)) {
            throw forbidden('admin:users required, or ?project_id= of a project you own');
          }
        }
        return listAudit(db, query);
      },
    }),
  ];
}
