import { z } from 'zod';
import { writeAudit } from '../core/audit.js';
import { notFound } from '../core/errors.js';
import { type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import type { RbacService } from '../rbac/index.js';
import type { Db } from '../store/db.js';
import type { ProjectsService } from './service.js';

export const projectName = z
  .string()
  .min(1)
  .max(63)
  .regex(
    /^[a-z0-9][a-z0-9_.-]*$/,
    'lower-case letters, digits, ".", "-" and "_", starting with a letter or digit',
  )
  .refine((s) => !s.endsWith('.git') && !s.includes('..'), 'must not end in ".git" or contain ".."');
const visibility = z.enum(['private', 'internal', 'public']);
const ownerParam = z.object({ owner: z.string().min(1).max(63), name: z.string().min(1).max(200) });
const ruleParams = z.object({ id: z.uuid(), ruleId: z.uuid() });
const ruleBody = z.object({
  pattern: z.string().min(1).max(255),
  allow_force_push: z.boolean().optional(),
  allow_deletion: z.boolean().optional(),
  required_approvals: z.number().int().min(0).max(100).optional(),
  require_pipeline: z.boolean().optional(),
});

export function projectRoutes(projects: ProjectsService, rbac: RbacService, db: Db): AnyRouteDef[] {
  return [
    route({
      method: 'POST',
      url: '/api/projects',
      summary: 'Create a project and its git repository (owner = caller)',
      tags: ['projects'],
      access: { permission: 'project:write' },
      status: 201,
      body: z.object({
        name: projectName,
        visibility: visibility.optional(),
        display_name: z.string().max(200).nullish(),
        description: z.string().max(5000).optional(),
        default_branch: z.string().min(1).max(255).optional(),
      }),
      handler: async ({ body, actor, requirePrincipal }) => projects.create(actor, requirePrincipal(), body),
    }),
    route({
      method: 'GET',
      url: '/api/projects',
      summary: 'Projects you can see (filters: owner, visibility, q, archived)',
      tags: ['projects'],
      access: 'public',
      query: paginationQuery.extend({
        owner: z.string().max(63).optional(),
        visibility: visibility.optional(),
        q: z.string().max(200).optional(),
        archived: z.enum(['true', 'false']).optional(),
      }),
      handler: async ({ query, principal }) =>
        projects.list(principal, { ...query, archived: query.archived === 'true' }),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id',
      summary: 'A project',
      tags: ['projects'],
      access: { permission: 'project:read', projectParam: 'id' },
      params: uuidParam,
      handler: async ({ params }) => projects.view(await projects.get(params.id)),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:owner/:name',
      summary: 'A project by owner and name (follows renames)',
      tags: ['projects'],
      access: 'public',
      params: ownerParam,
      handler: async ({ params, authorize }) => {
        const found = await projects.findByName(params.owner, params.name);
        if (!found) throw notFound('project');
        await authorize('project:read', found.project.id);
        return projects.view(found.project);
      },
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id',
      summary: 'Update or rename a project (old clone URLs keep working)',
      tags: ['projects'],
      access: { permission: 'project:write', projectParam: 'id' },
      params: uuidParam,
      body: z.object({
        name: projectName.optional(),
        display_name: z.string().max(200).nullish(),
        description: z.string().max(5000).optional(),
        visibility: visibility.optional(),
        default_branch: z.string().min(1).max(255).optional(),
      }),
      handler: async ({ params, body, actor }) => projects.update(actor, params.id, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id',
      summary: 'Archive a project (soft delete; the repository is kept)',
      tags: ['projects'],
      access: { permission: 'project:delete', projectParam: 'id' },
      params: uuidParam,
      handler: async ({ params, actor }) => projects.archive(actor, params.id),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/protected-branches',
      summary: 'Branch protection rules',
      tags: ['projects'],
      access: { permission: 'project:read', projectParam: 'id' },
      params: uuidParam,
      handler: async ({ params }) => ({
        items: await db
          .selectFrom('protected_branches')
          .selectAll()
          .where('project_id', '=', params.id)
          .orderBy('pattern')
          .execute(),
        next_cursor: null,
      }),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/protected-branches',
      summary: 'Add a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      status: 201,
      params: uuidParam,
      body: ruleBody,
      handler: async ({ params, body, actor, authorize, requirePrincipal }) => {
        await authorize('project:read', params.id);
        await rbac.assertCanManageMembers(requirePrincipal(), params.id);
        return db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('protected_branches')
            .values({ project_id: params.id, ...body })
            .returningAll()
            .executeTakeFirstOrThrow();
          await writeAudit(trx, {
            actor,
            action: 'protected_branch.create',
            resourceType: 'protected_branch',
            resourceId: row.id,
            projectId: params.id,
            detail: { ...body },
          });
          return row;
        });
      },
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id/protected-branches/:ruleId',
      summary: 'Change a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      params: ruleParams,
      body: ruleBody.partial(),
      handler: async ({ params, body, actor, authorize, requirePrincipal }) => {
        await authorize('project:read', params.id);
        await rbac.assertCanManageMembers(requirePrincipal(), params.id);
        return db.transaction().execute(async (trx) => {
          const row = await trx
            .updateTable('protected_branches')
            .set(body)
            .where('id', '=', params.ruleId)
            .where('project_id', '=', params.id)
            .returningAll()
            .executeTakeFirst();
          if (!row) throw notFound('protection rule');
          await writeAudit(trx, {
            actor,
            action: 'protected_branch.update',
            resourceType: 'protected_branch',
            resourceId: row.id,
            projectId: params.id,
            detail: { ...body },
          });
          return row;
        });
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id/protected-branches/:ruleId',
      summary: 'Remove a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      params: ruleParams,
      handler: async ({ params, actor, authorize, requirePrincipal }) => {
        await authorize('project:read', params.id);
        await rbac.assertCanManageMembers(requirePrincipal(), params.id);
        await db.transaction().execute(async (trx) => {
          const row = await trx
            .deleteFrom('protected_branches')
            .where('id', '=', params.ruleId)
            .where('project_id', '=', params.id)
            .returning(['id', 'pattern'])
            .executeTakeFirst();
          if (!row) throw notFound('protection rule');
          await writeAudit(trx, {
            actor,
            action: 'protected_branch.delete',
            resourceType: 'protected_branch',
            resourceId: row.id,
            projectId: params.id,
            detail: { pattern: row.pattern },
          });
        });
      },
    }),
  ];
}
