import { conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { PERMISSIONS, type Permission } from '../core/permissions.js';
import type { DbOrTx } from '../store/db.js';
import type { AccessResolver } from './access.js';
import {
  allRolePermissions,
  allRoles,
  permissionsOfRole,
  replaceRolePermissions,
  roleByRef,
} from './queries.js';
import { RBAC_REASONS } from './reasons.js';

interface RoleRow {
  id: string;
  name: string;
  description: string;
  is_system: boolean;
  created_at: Date;
  updated_at: Date;
}

const roleView = (r: RoleRow, permissions: Permission[]) => ({
  id: r.id,
  name: r.name,
  description: r.description,
  is_system: r.is_system,
  permissions,
  created_at: r.created_at,
  updated_at: r.updated_at,
});

/** In the one order of `PERMISSIONS`, without repeats. */
const ordered = (permissions: readonly string[]): Permission[] =>
  PERMISSIONS.filter((p) => permissions.includes(p));

const systemRole = (message: string) =>
  conflict(message, [{ message: 'role is_system', is_system: true }]).because(RBAC_REASONS.systemRole);

/** Roles and the permissions they grant. Every change invalidates every cached resolution. */
export class Roles {
  constructor(private readonly access: AccessResolver) {}

  private get db() {
    return this.access.db;
  }

  async listRoles() {
    const roles = await allRoles(this.db);
    const grants = await allRolePermissions(this.db);
    return roles.map((r) =>
      roleView(r, ordered(grants.filter((g) => g.role_id === r.id).map((g) => g.permission))),
    );
  }

  /** A role by id or name. */
  async getRole(db: DbOrTx, idOrName: string) {
    const role = await roleByRef(db, idOrName);
    if (!role) throw notFound('role');
    return role;
  }

  async rolePermissions(roleId: string): Promise<Permission[]> {
    const role = await this.getRole(this.db, roleId);
    return ordered((await permissionsOfRole(this.db, role.id)).map((r) => r.permission));
  }

  async createRole(
    actor: Actor,
    input: { name: string; description?: string | undefined; permissions?: Permission[] | undefined },
  ) {
    return this.access.mutate(async (trx) => {
      if (await roleByRef(trx, input.name))
        throw conflict(`role ${input.name} already exists`).because(RBAC_REASONS.roleTaken);
      const role = await trx
        .insertInto('roles')
        .values({ name: input.name, description: input.description ?? '', is_system: false })
        .returningAll()
        .executeTakeFirstOrThrow();
      const permissions = ordered(input.permissions ?? []);
      await replaceRolePermissions(trx, role.id, permissions);
      return {
        result: roleView(role, permissions),
        audit: {
          actor,
          action: 'role.create',
          resourceType: 'role',
          resourceId: role.id,
          detail: { name: role.name, permissions },
        },
      };
    }, null);
  }

  async setRolePermissions(actor: Actor, roleId: string, permissions: Permission[]) {
    const unique = ordered(permissions);
    return this.access.mutate(
      async (trx) => {
        const role = await this.getRole(trx, roleId);
        if (role.name === 'admin' && role.is_system && unique.length !== PERMISSIONS.length)
          throw systemRole('the system role admin always holds every permission');
        await replaceRolePermissions(trx, role.id, unique);
        return {
          result: { permissions: unique },
          audit: {
            actor,
            action: 'role.update_permissions',
            resourceType: 'role',
            resourceId: role.id,
            detail: { name: role.name, permissions: unique },
          },
        };
      },
      { all: true },
    );
  }

  async deleteRole(actor: Actor, roleId: string): Promise<void> {
    await this.access.mutate(
      async (trx) => {
        const role = await this.getRole(trx, roleId);
        if (role.is_system) throw systemRole('system roles cannot be deleted');
        await trx.deleteFrom('roles').where('id', '=', role.id).execute();
        return {
          result: undefined,
          audit: {
            actor,
            action: 'role.delete',
            resourceType: 'role',
            resourceId: role.id,
            detail: { name: role.name },
          },
        };
      },
      { all: true },
    );
  }
}
