import { z } from 'zod';
import { writeAudit } from '../core/audit.js';
import { notFound } from '../core/errors.js';
import { type AnyRouteDef, paginationQuery, type RouteContext, route, uuidParam } from '../core/http.js';
import { slugSchema } from '../core/validation.js';
import type { RbacService } from '../rbac/index.js';
import type { Db, Tx } from '../store/db.js';
import type { ProjectsService } from './service.js';

/**
 * Sub-resources of `/api/projects/:id/…`: a project with one of these names could not be addressed
 * as `/api/projects/:owner/:name` (the router prefers the static segment). The rest are kept for
 * modules to come. A test checks that every registered project sub-resource is in the list.
 */
export const RESERVED_PROJECT_NAMES: ReadonlySet<string> = new Set([
  'alerts',
  'artifacts',
  'blob',
  'branches',
  'commits',
  'compare',
  'deployments',
  'environments',
  'issues',
  'members',
  'merge-requests',
  'pipelines',
  'protected-branches',
  'raw',
  'secrets',
  'sessions',
  'settings',
  'tags',
  'tree',
  'webhooks',
]);

export const projectName = slugSchema
  .refine((s) => !s.endsWith('.git') && !s.includes('..'), 'must not end in ".git" or contain ".."')
  .refine((s) => !RESERVED_PROJECT_NAMES.has(s), 'is reserved (a project sub-resource name)');
const visibility = z.enum(['private', 'internal', 'public']);
const ownerParam = z.object({ owner: z.string().min(1).max(63), name: z.string().min(1).max(200) });
const ruleParams = z.object({ id: z.uuid(), ruleId: z.uuid() });
const ruleBody = z.object({
  pattern: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\s]+$/, 'a branch name or glob without spaces'),
  allow_force_push: z.boolean().optional(),
  allow_deletion: z.boolean().optional(),
  required_approvals: z.number().int().min(0).max(100).optional(),
  require_pipeline: z.boolean().optional(),
  /** Users who may still push directly when the rule requires approvals or a pipeline. */
  allow_direct_push: z.array(z.uuid()).max(100).optional(),
});

export function projectRoutes(projects: ProjectsService, rbac: RbacService, db: Db): AnyRouteDef[] {
  /** Protection rules are changed by the project owner or an admin; one audited transaction each. */
  const changeRule = async <R extends { id: string; pattern: string }>(
    ctx: Pick<RouteContext<unknown, unknown, unknown>, 'actor' | 'principal'>,
    projectId: string,
    action: string,
    detail: Record<string, unknown>,
    write: (trx: Tx) => Promise<R | undefined>,
  ): Promise<R> => {
    await rbac.assertCanChangeSettings(ctx.principal, projectId);
    return db.transaction().execute(async (trx) => {
      const row = await write(trx);
      if (!row) throw notFound('protection rule');
      await writeAudit(trx, {
        actor: ctx.actor,
        action,
        resourceType: 'protected_branch',
        resourceId: row.id,
        projectId,
        detail: { pattern: row.pattern, ...detail },
      });
      return row;
    });
  };

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
      handler: async ({ params, body, actor, principal }) => {
        // Name, visibility and default branch decide who can see or change the project: owner or
        // admin. Display name and description are ordinary project:write.
        if (body.name !== undefined || body.visibility !== undefined || body.default_branch !== undefined)
          await rbac.assertCanChangeSettings(principal, params.id);
        return projects.update(actor, params.id, body);
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id',
      summary: 'Archive a project (soft delete; the repository is kept)',
      tags: ['projects'],
      access: { permission: 'project:delete', projectParam: 'id' },
      params: uuidParam,
      handler: async ({ params, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id, 'project:delete');
        return projects.archive(actor, params.id);
      },
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
      handler: async (ctx) =>
        changeRule(ctx, ctx.params.id, 'protected_branch.create', { ...ctx.body }, (trx) =>
          trx
            .insertInto('protected_branches')
            .values({ project_id: ctx.params.id, ...ctx.body })
            .returningAll()
            .executeTakeFirst(),
        ),
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id/protected-branches/:ruleId',
      summary: 'Change a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      params: ruleParams,
      body: ruleBody.partial().refine((b) => Object.keys(b).length > 0, 'nothing to change'),
      handler: async (ctx) =>
        changeRule(ctx, ctx.params.id, 'protected_branch.update', { ...ctx.body }, (trx) =>
          trx
            .updateTable('protected_branches')
            .set(ctx.body)
            .where('id', '=', ctx.params.ruleId)
            .where('project_id', '=', ctx.params.id)
            .returningAll()
            .executeTakeFirst(),
        ),
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id/protected-branches/:ruleId',
      summary: 'Remove a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      params: ruleParams,
      handler: async (ctx) => {
        await changeRule(ctx, ctx.params.id, 'protected_branch.delete', {}, (trx) =>
          trx
            .deleteFrom('protected_branches')
            .where('id', '=', ctx.params.ruleId)
            .where('project_id', '=', ctx.params.id)
            .returningAll()
            .executeTakeFirst(),
        );
      },
    }),
  ];
}
