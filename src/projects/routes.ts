import { z } from 'zod';
import { notFound } from '../core/errors.js';
import { type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import type { RbacService } from '../rbac/index.js';
import type { ProtectionRulesService } from './protection-rules.js';
import { PROJECT_REASONS } from './reasons.js';
import {
  createProjectBody,
  ownerAndName,
  ProjectListSchema,
  ProjectSchema,
  ProtectedBranchListSchema,
  ProtectedBranchSchema,
  protectionRuleBody,
  protectionRulePatch,
  updateProjectBody,
  visibility,
} from './schemas.js';
import type { ProjectsService } from './service.js';

const ruleParams = z.object({ id: z.uuid(), ruleId: z.uuid() });

export function projectRoutes(
  projects: ProjectsService,
  rules: ProtectionRulesService,
  rbac: RbacService,
): AnyRouteDef[] {
  return [
    route({
      method: 'POST',
      url: '/api/projects',
      summary: 'Create a project and its git repository (owner = caller)',
      tags: ['projects'],
      access: { permission: 'project:write' },
      status: 201,
      body: createProjectBody,
      response: ProjectSchema,
      reasons: [PROJECT_REASONS.nameTaken, PROJECT_REASONS.reservedName, PROJECT_REASONS.invalidBranchName],
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
      response: ProjectListSchema,
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
      response: ProjectSchema,
      handler: async ({ params }) => projects.view(await projects.get(params.id)),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:owner/:name',
      summary: 'A project by owner and name, in any case (follows renames)',
      tags: ['projects'],
      access: 'public',
      params: ownerAndName,
      response: ProjectSchema,
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
      body: updateProjectBody,
      response: ProjectSchema,
      reasons: [
        PROJECT_REASONS.archived,
        PROJECT_REASONS.nameTaken,
        PROJECT_REASONS.reservedName,
        PROJECT_REASONS.invalidBranchName,
      ],
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
      status: 204,
      params: uuidParam,
      reasons: [PROJECT_REASONS.archived],
      handler: async ({ params, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id, 'project:delete');
        await projects.archive(actor, params.id);
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/protected-branches',
      summary: 'Branch protection rules',
      tags: ['projects'],
      access: { permission: 'project:read', projectParam: 'id' },
      params: uuidParam,
      response: ProtectedBranchListSchema,
      handler: async ({ params }) => ({ items: await rules.list(params.id), next_cursor: null }),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/protected-branches',
      summary: 'Add a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      status: 201,
      params: uuidParam,
      body: protectionRuleBody,
      response: ProtectedBranchSchema,
      reasons: [PROJECT_REASONS.patternTaken],
      handler: async ({ params, body, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id);
        return rules.create(actor, params.id, body);
      },
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id/protected-branches/:ruleId',
      summary: 'Change a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      params: ruleParams,
      body: protectionRulePatch,
      response: ProtectedBranchSchema,
      reasons: [PROJECT_REASONS.patternTaken],
      handler: async ({ params, body, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id);
        return rules.update(actor, params.id, params.ruleId, body);
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id/protected-branches/:ruleId',
      summary: 'Remove a branch protection rule (project owner or admin)',
      tags: ['projects'],
      access: 'authenticated',
      status: 204,
      params: ruleParams,
      handler: async ({ params, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id);
        await rules.remove(actor, params.id, params.ruleId);
      },
    }),
  ];
}
