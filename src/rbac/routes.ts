import { z } from 'zod';
import { conflict, notFound } from '../core/errors.js';
import { type AnyRouteDef, route, uuidParam } from '../core/http.js';
import { PERMISSIONS } from '../core/permissions.js';
import type { RbacService } from './service.js';

const permissionEnum = z.enum(PERMISSIONS);
const roleName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z][a-z0-9_-]*$/, 'lower-case letters, digits, "-" and "_", starting with a letter');

const roleSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string(),
  is_system: z.boolean(),
  permissions: z.array(permissionEnum),
  created_at: z.string(),
  updated_at: z.string(),
});

export function rbacRoutes(rbac: RbacService): AnyRouteDef[] {
  const admin = { permission: 'admin:users' } as const;
  return [
    route({
      method: 'GET',
      url: '/api/admin/roles',
      summary: 'List roles with their permissions',
      tags: ['rbac'],
      access: admin,
      response: z.object({ items: z.array(roleSchema), next_cursor: z.null() }),
      handler: async () => ({ items: await rbac.listRoles(), next_cursor: null }),
    }),
    route({
      method: 'POST',
      url: '/api/admin/roles',
      summary: 'Create a role',
      tags: ['rbac'],
      access: admin,
      status: 201,
      body: z.object({
        name: roleName,
        description: z.string().max(500).optional(),
        permissions: z
          .array(permissionEnum)
          .max(PERMISSIONS.length * 2)
          .optional(),
      }),
      response: roleSchema,
      handler: async ({ body, actor }) => rbac.createRole(actor, body),
    }),
    route({
      method: 'GET',
      url: '/api/admin/roles/:id/permissions',
      summary: 'Permissions of a role',
      tags: ['rbac'],
      access: admin,
      params: uuidParam,
      handler: async ({ params }) => ({ permissions: await rbac.rolePermissions(params.id) }),
    }),
    route({
      method: 'PUT',
      url: '/api/admin/roles/:id/permissions',
      summary: 'Replace the permissions of a role',
      tags: ['rbac'],
      access: admin,
      params: uuidParam,
      body: z.object({ permissions: z.array(permissionEnum).max(PERMISSIONS.length * 2) }),
      handler: async ({ params, body, actor }) => rbac.setRolePermissions(actor, params.id, body.permissions),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/roles/:id',
      summary: 'Delete a role (not a system role)',
      tags: ['rbac'],
      access: admin,
      params: uuidParam,
      handler: async ({ params, actor }) => rbac.deleteRole(actor, params.id),
    }),
    route({
      method: 'GET',
      url: '/api/admin/users/:id/roles',
      summary: "A user's role bindings",
      tags: ['rbac'],
      access: admin,
      params: uuidParam,
      handler: async ({ params }) => ({ items: await rbac.listBindings(params.id), next_cursor: null }),
    }),
    route({
      method: 'POST',
      url: '/api/admin/users/:id/roles',
      summary: 'Bind a role to a user, globally or on one project',
      tags: ['rbac'],
      access: admin,
      status: 201,
      params: uuidParam,
      body: z.object({ role: z.string().min(1).max(64), project_id: z.uuid().nullish() }),
      handler: async ({ params, body, actor }) => rbac.assignRole(actor, params.id, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/users/:id/roles/:roleId',
      summary: 'Remove a role binding (the global one, or the one on ?project_id=)',
      tags: ['rbac'],
      access: admin,
      params: z.object({ id: z.uuid(), roleId: z.uuid() }),
      query: z.object({ project_id: z.uuid().optional() }),
      handler: async ({ params, query, actor }) =>
        rbac.removeRole(actor, params.id, params.roleId, query.project_id ?? null),
    }),
    route({
      method: 'GET',
      url: '/api/admin/delegations',
      summary: 'Delegations you granted or received (all of them with admin:delegate)',
      tags: ['rbac'],
      access: 'authenticated',
      query: z.object({ active: z.enum(['true', 'false']).optional() }),
      handler: async ({ query, requirePrincipal, can }) =>
        rbac.listDelegations(
          requirePrincipal(),
          { active: query.active === 'true' },
          await can('admin:delegate'),
        ),
    }),
    route({
      method: 'POST',
      url: '/api/admin/delegations',
      summary: 'Delegate one of your permissions to another user (e.g. an agent)',
      tags: ['rbac'],
      access: { permission: 'admin:delegate' },
      status: 201,
      body: z.object({
        delegate_id: z.uuid(),
        permission: permissionEnum,
        project_id: z.uuid().nullish(),
        expires_at: z.coerce.date().nullish(),
        reason: z.string().max(500).optional(),
      }),
      handler: async ({ body, actor, requirePrincipal }) =>
        rbac.createDelegation(actor, requirePrincipal(), body),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/delegations/:id',
      summary: 'Revoke a delegation (takes effect immediately)',
      tags: ['rbac'],
      access: 'authenticated',
      params: uuidParam,
      handler: async ({ params, actor, requirePrincipal, can }) =>
        rbac.revokeDelegation(actor, requirePrincipal(), params.id, await can('admin:delegate')),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/members',
      summary: 'Members of a project and their roles',
      tags: ['projects'],
      access: { permission: 'project:read', projectParam: 'id' },
      params: uuidParam,
      handler: async ({ params }) => rbac.listMembers(params.id),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/members',
      summary: 'Add a member with a role (project owner or admin:users)',
      tags: ['projects'],
      access: 'authenticated',
      status: 201,
      params: uuidParam,
      body: z.object({ user_id: z.uuid(), role: z.string().min(1).max(64) }),
      handler: async ({ params, body, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id);
        return rbac.assignRole(
          actor,
          body.user_id,
          { role: body.role, project_id: params.id },
          'project.member_add',
        );
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id/members/:userId',
      summary: "Remove a member's role on the project (?role=, default: the only one)",
      tags: ['projects'],
      access: 'authenticated',
      params: z.object({ id: z.uuid(), userId: z.uuid() }),
      query: z.object({ role: z.string().min(1).max(64).optional() }),
      handler: async ({ params, query, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id);
        // An unknown user and a user who is not a member answer the same.
        const bindings = (await rbac.memberBindings(params.id, params.userId)).filter(
          (b) => !query.role || b.role === query.role || b.role_id === query.role,
        );
        const [binding, ...rest] = bindings;
        if (!binding || rest.length > 0) {
          if (!binding) throw notFound('member');
          throw conflict('the user has several roles on this project; say which with ?role=');
        }
        return rbac.removeRole(actor, params.userId, binding.role_id, params.id, 'project.member_remove');
      },
    }),
  ];
}
