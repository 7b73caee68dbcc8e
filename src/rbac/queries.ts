import { sql } from 'kysely';
import { isUuid } from '../core/validation.js';
import type { Db, DbOrTx, Tx } from '../store/db.js';

/** Delegations that count now: not revoked, not expired. */
const live = sql<boolean>`revoked_at is null and (expires_at is null or expires_at > now())`;

/** A user by id, or by name ignoring case (names are unique ignoring case). */
export function userByRef(db: DbOrTx, ref: string) {
  const q = db.selectFrom('users').select(['id', 'name', 'user_type', 'is_active']);
  return (
    isUuid(ref) ? q.where('id', '=', ref) : q.where(sql<string>`lower(name)`, '=', ref.toLowerCase())
  ).executeTakeFirst();
}

export function projectById(db: DbOrTx, id: string) {
  return db
    .selectFrom('projects')
    .select(['id', 'owner_id', 'visibility', 'is_active'])
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Role bindings of a user that apply globally (projectId null) or on one project, with the role's permissions. */
export function roleGrants(db: DbOrTx, userId: string, projectId: string | null) {
  return db
    .selectFrom('user_roles as ur')
    .innerJoin('roles as r', 'r.id', 'ur.role_id')
    .leftJoin('role_permissions as rp', 'rp.role_id', 'r.id')
    .select(['r.name', 'ur.project_id', 'rp.permission'])
    .where('ur.user_id', '=', userId)
    .where((eb) =>
      projectId
        ? eb.or([eb('ur.project_id', 'is', null), eb('ur.project_id', '=', projectId)])
        : eb('ur.project_id', 'is', null),
    )
    .execute();
}

/** Live delegations to a user that apply globally or on one project. */
export function delegationGrants(db: DbOrTx, userId: string, projectId: string | null) {
  return db
    .selectFrom('delegations')
    .select(['permission', 'expires_at', 'project_id'])
    .where('delegate_id', '=', userId)
    .where(live)
    .where((eb) =>
      projectId
        ? eb.or([eb('project_id', 'is', null), eb('project_id', '=', projectId)])
        : eb('project_id', 'is', null),
    )
    .execute();
}

// ---------------------------------------------------------------- roles

export function allRoles(db: Db) {
  return db.selectFrom('roles').selectAll().orderBy('name').execute();
}

export function allRolePermissions(db: Db) {
  return db.selectFrom('role_permissions').selectAll().execute();
}

export function roleByRef(db: DbOrTx, ref: string) {
  return db
    .selectFrom('roles')
    .selectAll()
    .where(isUuid(ref) ? 'id' : 'name', '=', ref)
    .executeTakeFirst();
}

export function permissionsOfRole(db: DbOrTx, roleId: string) {
  return db.selectFrom('role_permissions').select('permission').where('role_id', '=', roleId).execute();
}

export async function replaceRolePermissions(trx: Tx, roleId: string, permissions: string[]): Promise<void> {
  await trx.deleteFrom('role_permissions').where('role_id', '=', roleId).execute();
  if (permissions.length > 0)
    await trx
      .insertInto('role_permissions')
      .values(permissions.map((permission) => ({ role_id: roleId, permission })))
      .execute();
}

// ---------------------------------------------------------------- bindings

/** Role bindings with the role's name; narrowed by the caller (a user, a project). */
export function bindings(db: DbOrTx) {
  return db
    .selectFrom('user_roles as ur')
    .innerJoin('roles as r', 'r.id', 'ur.role_id')
    .select(['ur.id', 'ur.user_id', 'ur.role_id', 'r.name as role', 'ur.project_id', 'ur.created_at'])
    .orderBy('r.name');
}

/** The binding of one role to a user, globally (projectId null) or on one project. */
export function bindingOf(trx: Tx, userId: string, roleId: string, projectId: string | null) {
  return trx
    .selectFrom('user_roles')
    .select('id')
    .where('user_id', '=', userId)
    .where('role_id', '=', roleId)
    .where((eb) => (projectId ? eb('project_id', '=', projectId) : eb('project_id', 'is', null)))
    .executeTakeFirst();
}

/**
 * Binds a role, named, to a user (globally when `projectId` is null): for other modules that must
 * grant a role inside their own transaction (the bootstrap admin). No audit row: the caller audits.
 */
export async function bindRoleByName(
  trx: DbOrTx,
  userId: string,
  roleName: string,
  projectId: string | null = null,
): Promise<void> {
  const role = await trx
    .selectFrom('roles')
    .select('id')
    .where('name', '=', roleName)
    .executeTakeFirstOrThrow();
  await trx
    .insertInto('user_roles')
    .values({ user_id: userId, role_id: role.id, project_id: projectId })
    .execute();
}

export function insertBinding(trx: Tx, userId: string, roleId: string, projectId: string | null) {
  return trx
    .insertInto('user_roles')
    .values({ user_id: userId, role_id: roleId, project_id: projectId })
    .returning(['id', 'user_id', 'role_id', 'project_id', 'created_at'])
    .executeTakeFirstOrThrow();
}

export function deleteBinding(trx: Tx, userId: string, roleId: string, projectId: string | null) {
  return trx
    .deleteFrom('user_roles')
    .where('user_id', '=', userId)
    .where('role_id', '=', roleId)
    .where((eb) => (projectId ? eb('project_id', '=', projectId) : eb('project_id', 'is', null)))
    .returning('id')
    .execute();
}

/** Active users other than `exceptUserId` bound to the role globally. */
export async function otherGlobalHolders(trx: Tx, roleId: string, exceptUserId: string): Promise<number> {
  const row = await trx
    .selectFrom('user_roles as ur')
    .innerJoin('users as u', 'u.id', 'ur.user_id')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('ur.role_id', '=', roleId)
    .where('ur.project_id', 'is', null)
    .where('ur.user_id', '!=', exceptUserId)
    .where('u.is_active', '=', true)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export function projectMembers(db: Db, projectId: string) {
  return db
    .selectFrom('user_roles as ur')
    .innerJoin('roles as r', 'r.id', 'ur.role_id')
    .innerJoin('users as u', 'u.id', 'ur.user_id')
    .select(['u.id as user_id', 'u.name as user_name', 'r.id as role_id', 'r.name as role', 'ur.created_at'])
    .where('ur.project_id', '=', projectId)
    .orderBy('u.name')
    .orderBy('r.name')
    .execute();
}

// ---------------------------------------------------------------- delegations

/** Delegations with both parties' names. */
export function delegationsWithNames(db: DbOrTx) {
  return db
    .selectFrom('delegations as d')
    .innerJoin('users as a', 'a.id', 'd.delegator_id')
    .innerJoin('users as b', 'b.id', 'd.delegate_id')
    .select([
      'd.id',
      'd.delegator_id',
      'a.name as delegator_name',
      'd.delegate_id',
      'b.name as delegate_name',
      'd.permission',
      'd.project_id',
      'd.expires_at',
      'd.reason',
      'd.revoked_at',
      'd.created_at',
    ]);
}

export const liveDelegation = sql<boolean>`d.revoked_at is null and (d.expires_at is null or d.expires_at > now())`;

export function delegationById(db: Db, id: string) {
  return db.selectFrom('delegations').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Revokes a live delegation; none returned when it was already revoked. */
export function revokeDelegationRow(trx: Tx, id: string) {
  return trx
    .updateTable('delegations')
    .set({ revoked_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returning('id')
    .execute();
}
