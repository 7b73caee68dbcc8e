import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import { PERMISSIONS } from '../core/permissions.js';
import { RBAC_REASONS } from './reasons.js';
import {
  DelegationListSchema,
  DelegationSchema,
  ProjectMemberListSchema,
  RoleBindingListSchema,
  RoleBindingSchema,
  RoleListSchema,
  RolePermissionsSchema,
  RoleSchema,
} from './schemas.js';
import type { RbacService } from './service.js';

const permissionEnum = z.enum(PERMISSIONS);
const roleName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z][a-z0-9_-]*$/, 'lower-case letters, digits, "-" and "_", starting with a letter');
/** A user as a path segment or body field: the id, or the name in any case. */
const userRef = z.string().min(1).max(63).describe('user id, or user name (any case)');
const roleRef = z.string().min(1).max(64).describe('role id or name');

export function rbacRoutes(rbac: RbacService): AnyRouteDef[] {
  const { roles, bindings, delegations } = rbac;
  const admin = { permission: 'admin:users' } as const;
  return [
    route({
      method: 'GET',
      url: '/api/admin/roles',
      summary: 'List roles with their permissions',
      tags: ['rbac'],
      access: admin,
      response: RoleListSchema,
      handler: async () => ({ items: await roles.listRoles(), next_cursor: null }),
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
      response: RoleSchema,
      reasons: [RBAC_REASONS.roleTaken],
      handler: async ({ body, actor }) => roles.createRole(actor, body),
    }),
    route({
      method: 'GET',
      url: '/api/admin/roles/:id/permissions',
      summary: 'Permissions of a role',
      tags: ['rbac'],
      access: admin,
      params: uuidParam,
      response: RolePermissionsSchema,
      handler: async ({ params }) => ({ permissions: await roles.rolePermissions(params.id) }),
    }),
    route({
      method: 'PUT',
      url: '/api/admin/roles/:id/permissions',
      summary: 'Replace the permissions of a role',
      tags: ['rbac'],
      access: admin,
      params: uuidParam,
      body: z.object({ permissions: z.array(permissionEnum).max(PERMISSIONS.length * 2) }),
      response: RolePermissionsSchema,
      reasons: [RBAC_REASONS.systemRole],
      handler: async ({ params, body, actor }) =>
        roles.setRolePermissions(actor, params.id, body.permissions),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/roles/:id',
      summary: 'Delete a role (not a system role)',
      tags: ['rbac'],
      access: admin,
      status: 204,
      params: uuidParam,
      reasons: [RBAC_REASONS.systemRole],
      handler: async ({ params, actor }) => roles.deleteRole(actor, params.id),
    }),
    route({
      method: 'GET',
      url: '/api/admin/users/:id/roles',
      summary: "A user's role bindings (`:id` is the user's id or name)",
      tags: ['rbac'],
      access: admin,
      params: z.object({ id: userRef }),
      response: RoleBindingListSchema,
      handler: async ({ params }) => ({ items: await bindings.listBindings(params.id), next_cursor: null }),
    }),
    route({
      method: 'POST',
      url: '/api/admin/users/:id/roles',
      summary: 'Bind a role (id or name) to a user (`:id` is the id or name), globally or on one project',
      tags: ['rbac'],
      access: admin,
      status: 201,
      params: z.object({ id: userRef }),
      body: z.object({ role: roleRef, project_id: z.uuid().nullish() }),
      response: RoleBindingSchema,
      reasons: [RBAC_REASONS.alreadyBound],
      handler: async ({ params, body, actor }) => bindings.assignRole(actor, params.id, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/users/:id/roles/:roleId',
      summary:
        'Remove a role binding (the global one, or the one on ?project_id=); `:id` is the user id or name, `:roleId` the role id or name',
      tags: ['rbac'],
      access: admin,
      status: 204,
      params: z.object({ id: userRef, roleId: roleRef }),
      query: z.object({ project_id: z.uuid().optional() }),
      reasons: [RBAC_REASONS.lastAdmin],
      handler: async ({ params, query, actor }) =>
        bindings.removeRole(actor, params.id, params.roleId, query.project_id ?? null),
    }),
    route({
      method: 'GET',
      url: '/api/admin/delegations',
      summary: 'Delegations you granted or received, newest first (all of them with admin:delegate)',
      tags: ['rbac'],
      access: 'authenticated',
      query: paginationQuery.extend({ active: z.enum(['true', 'false']).optional() }),
      response: DelegationListSchema,
      handler: async ({ query, requirePrincipal, can }) =>
        delegations.listDelegations(
          requirePrincipal(),
          { ...query, active: query.active === 'true' },
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
      response: DelegationSchema,
      reasons: [
        RBAC_REASONS.notHeld,
        RBAC_REASONS.selfDelegation,
        RBAC_REASONS.globalPermission,
        RBAC_REASONS.expiryInPast,
      ],
      handler: async ({ body, actor, requirePrincipal }) =>
        delegations.createDelegation(actor, requirePrincipal(), body),
    }),
    route({
      method: 'DELETE',
      url: '/api/admin/delegations/:id',
      summary: 'Revoke a delegation (takes effect immediately)',
      tags: ['rbac'],
      access: 'authenticated',
      status: 204,
      params: uuidParam,
      reasons: [RBAC_REASONS.delegationRevoked, RBAC_REASONS.notDelegator],
      handler: async ({ params, actor, requirePrincipal, can }) =>
        delegations.revokeDelegation(actor, requirePrincipal(), params.id, await can('admin:delegate')),
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/members',
      summary: 'Members of a project and their roles (the owner first, as role `owner`)',
      tags: ['projects'],
      access: { permission: 'project:read', projectParam: 'id' },
      params: uuidParam,
      response: ProjectMemberListSchema,
      handler: async ({ params }) => bindings.listMembers(params.id),
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/members',
      summary:
        'Add a member with a role (project owner or admin:users); name the user with `user` (id or name, any case) or `user_id` (also id or name)',
      tags: ['projects'],
      access: 'authenticated',
      status: 201,
      params: uuidParam,
      body: z
        .object({
          user: userRef.optional(),
          user_id: userRef.optional(),
          role: roleRef,
        })
        .refine((b) => (b.user === undefined) !== (b.user_id === undefined), {
          message: 'give exactly one of user and user_id',
          path: ['user'],
        }),
      response: RoleBindingSchema,
      reasons: [RBAC_REASONS.alreadyBound, RBAC_REASONS.notOwner, RBAC_REASONS.tokenOtherProject],
      handler: async ({ params, body, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id);
        return bindings.addMember(actor, params.id, (body.user ?? body.user_id)!, body.role);
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id/members/:userId',
      summary:
        "Remove a member's role on the project (`:userId` is the user's id or name; ?role= id or name, default: the only one)",
      tags: ['projects'],
      access: 'authenticated',
      status: 204,
      params: z.object({ id: z.uuid(), userId: userRef }),
      query: z.object({ role: roleRef.optional() }),
      reasons: [RBAC_REASONS.severalRoles, RBAC_REASONS.notOwner, RBAC_REASONS.tokenOtherProject],
      handler: async ({ params, query, actor, principal }) => {
        await rbac.assertCanChangeSettings(principal, params.id);
        await bindings.removeMember(actor, params.id, params.userId, query.role);
      },
    }),
  ];
}
