import { isPermission, PERMISSIONS, type Permission, PROJECT_PERMISSIONS } from '../core/permissions.js';
import type { DbOrTx } from '../store/db.js';
import { delegationGrants, projectById, roleGrants } from './queries.js';

export interface EffectivePermissions {
  permissions: Permission[];
  roles: { name: string; project_id: string | null }[];
  /** Epoch ms when this resolution stops being valid (earliest delegation expiry), or null. */
  valid_until: number | null;
  /**
   * On a project: whether the user has an explicit relationship with it (owner, a role bound to it,
   * an active delegation on it, or global admin) — what makes a private project visible.
   */
  related: boolean;
}

/**
 * Effective permissions from the database: global roles ∪ project roles ∪ project ownership ∪
 * live delegations; on a private project, global grants count only for admins.
 */
export async function resolveFromDatabase(
  db: DbOrTx,
  userId: string,
  projectId: string | null,
): Promise<EffectivePermissions> {
  const roleRows = await roleGrants(db, userId, projectId);
  const delegationRows = await delegationGrants(db, userId, projectId);
  const globalGrants = new Set<Permission>();
  const projectGrants = new Set<Permission>();
  const roles = new Map<string, { name: string; project_id: string | null }>();
  let bound = false;
  for (const row of roleRows) {
    roles.set(`${row.name}:${row.project_id ?? ''}`, { name: row.name, project_id: row.project_id });
    if (row.project_id) bound = true;
    if (row.permission && isPermission(row.permission))
      (row.project_id ? projectGrants : globalGrants).add(row.permission);
  }
  let validUntil: number | null = null;
  for (const row of delegationRows) {
    if (row.project_id) bound = true;
    if (isPermission(row.permission)) (row.project_id ? projectGrants : globalGrants).add(row.permission);
    if (row.expires_at) {
      const t = new Date(row.expires_at).getTime();
      validUntil = validUntil === null ? t : Math.min(validUntil, t);
    }
  }
  const admin = globalGrants.has('admin:users');
  let related = false;
  let globalApplies = true;
  if (projectId) {
    const project = await projectById(db, projectId);
    const owner = project?.owner_id === userId;
    if (owner) for (const p of PROJECT_PERMISSIONS) projectGrants.add(p);
    related = owner || bound || admin;
    // "Private" means members only: global roles and global delegations of anyone but an admin
    // stop at public and internal projects (as in Gitea and GitLab).
    globalApplies = project?.visibility !== 'private' || admin;
  }
  const permissions = new Set<Permission>(projectGrants);
  if (globalApplies) for (const p of globalGrants) permissions.add(p);
  return {
    permissions: PERMISSIONS.filter((p) => permissions.has(p)),
    roles: [...roles.values()].sort((a, b) => a.name.localeCompare(b.name)),
    valid_until: validUntil,
    related,
  };
}
