import { z } from 'zod';
import { PERMISSIONS } from '../core/permissions.js';

const timestamp = z.string().describe('ISO 8601');
const permission = z.enum(PERMISSIONS);

export const RoleSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    description: z.string(),
    is_system: z.boolean(),
    permissions: z.array(permission),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Role' });

export const RoleListSchema = z.object({ items: z.array(RoleSchema), next_cursor: z.string().nullable() });

export const RolePermissionsSchema = z
  .object({ permissions: z.array(permission) })
  .meta({ id: 'RolePermissions' });

/** A role bound to a user, globally (project_id null) or on one project. */
export const RoleBindingSchema = z
  .object({
    id: z.uuid(),
    user_id: z.uuid(),
    role_id: z.uuid(),
    role: z.string(),
    project_id: z.uuid().nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'RoleBinding' });

export const RoleBindingListSchema = z.object({
  items: z.array(RoleBindingSchema),
  next_cursor: z.string().nullable(),
});

/** A member of a project: the owner first (role `owner`, no binding), then each role binding. */
export const ProjectMemberSchema = z
  .object({
    user_id: z.uuid(),
    user_name: z.string(),
    role_id: z.uuid().nullable(),
    role: z.string(),
    created_at: timestamp.nullable(),
  })
  .meta({ id: 'ProjectMember' });

export const ProjectMemberListSchema = z.object({
  items: z.array(ProjectMemberSchema),
  next_cursor: z.string().nullable(),
});

export const DelegationSchema = z
  .object({
    id: z.uuid(),
    delegator_id: z.uuid(),
    delegator_name: z.string(),
    delegate_id: z.uuid(),
    delegate_name: z.string(),
    permission: permission,
    project_id: z.uuid().nullable(),
    expires_at: timestamp.nullable(),
    reason: z.string(),
    revoked_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'Delegation' });

export const DelegationListSchema = z.object({
  items: z.array(DelegationSchema),
  next_cursor: z.string().nullable(),
});
