import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Logger } from 'pino';
import { type AuditEntry, writeAudit } from '../core/audit.js';
import { conflict, forbidden, notFound, unauthorized, unprocessable } from '../core/errors.js';
import type { AccessDecision, Actor, Principal } from '../core/http.js';
import { isPermission, PERMISSIONS, type Permission, PROJECT_PERMISSIONS } from '../core/permissions.js';
import { isUuid } from '../core/validation.js';
import type { Cache } from '../store/cache/types.js';
import type { Db, DbOrTx, Tx } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';

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

/** What a caller may do on one project: the one visibility rule (02-identity) in one place. */
export interface ProjectAccess {
  /** The project exists for the caller; when false every answer about it is "not found". */
  visible: boolean;
  /** The caller may read it (visible, and a token's scopes allow `project:read`, or it is public). */
  readable: boolean;
  /** Effective permissions on it, already narrowed by the token's scopes and project restriction. */
  permissions: Permission[];
}

interface ProjectInfo {
  visibility: 'private' | 'internal' | 'public';
  owner_id: string;
  is_active: boolean;
}

const INVALIDATE_CHANNEL = 'identity.invalidate';
export type InvalidationMessage = { userId: string } | { projectId: string } | { all: true };

const GLOBAL = 'global';
/** In-process copies live shortly; the shared cache and pub/sub carry invalidations across instances. */
const LOCAL_TTL_MS = 60_000;

/**
 * Role-based access control: resolves effective permissions (global roles ∪ project roles ∪ project
 * ownership ∪ active delegations), caches them per (user, project) in the shared Cache and in a
 * process-local map, and invalidates both on every change — on all instances through PubSub.
 */
export class RbacService {
  private readonly local = new Map<string, { value: EffectivePermissions; expires: number }>();
  private readonly projects = new Map<string, { value: ProjectInfo | null; expires: number }>();
  /** Bumped on every invalidation: a resolution that started before it is not cached. */
  private generation = 0;
  private readonly listeners: ((m: InvalidationMessage) => void)[] = [];
  private unsubscribe?: () => Promise<void>;

  constructor(
    private readonly db: Db,
    private readonly cache: Cache,
    private readonly pubsub: PubSub,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.pubsub.subscribe(INVALIDATE_CHANNEL, (message) => {
      this.applyInvalidation(message as InvalidationMessage);
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  /** Other identity caches (the authenticated-principal cache) follow the same invalidations. */
  onInvalidate(listener: (m: InvalidationMessage) => void): void {
    this.listeners.push(listener);
  }

  private applyInvalidation(message: InvalidationMessage): void {
    this.generation++;
    if ('all' in message) {
      this.local.clear();
      this.projects.clear();
    } else if ('userId' in message) {
      for (const key of this.local.keys()) if (key.startsWith(`${message.userId}:`)) this.local.delete(key);
    } else {
      this.projects.delete(message.projectId);
      for (const key of this.local.keys()) if (key.endsWith(`:${message.projectId}`)) this.local.delete(key);
    }
    for (const listener of this.listeners) listener(message);
  }

  /** Call after the transaction that changed roles, bindings, delegations or users has committed. */
  async invalidate(message: InvalidationMessage): Promise<void> {
    this.applyInvalidation(message);
    try {
      if ('all' in message) await this.cache.deleteByPrefix('rbac:');
      else if ('userId' in message) await this.cache.deleteByPrefix(`rbac:perm:${message.userId}:`);
      else {
        await this.cache.delete(`rbac:project:${message.projectId}`);
        // Ownership is part of every user's resolution on that project.
        await this.cache.deleteByPrefix('rbac:perm:');
      }
      await this.pubsub.publish(INVALIDATE_CHANNEL, message);
    } catch (err) {
      // The change is committed; a cache outage must not turn it into an error. Entries expire by TTL.
      this.log.error({ err }, 'permission cache invalidation failed');
    }
  }

  async project(projectId: string): Promise<ProjectInfo | null> {
    const now = Date.now();
    const hit = this.projects.get(projectId);
    if (hit && hit.expires > now) return hit.value;
    const generation = this.generation;
    const key = `rbac:project:${projectId}`;
    let value = await this.cache.get<ProjectInfo | null>(key);
    if (value === undefined) {
      const row = await this.db
        .selectFrom('projects')
        .select(['visibility', 'owner_id', 'is_active'])
        .where('id', '=', projectId)
        .executeTakeFirst();
      value = row
        ? {
            visibility: row.visibility as ProjectInfo['visibility'],
            owner_id: row.owner_id,
            is_active: row.is_active,
          }
        : null;
      if (generation === this.generation) await this.cache.set(key, value, this.ttlSeconds);
    }
    if (generation === this.generation) this.projects.set(projectId, { value, expires: now + LOCAL_TTL_MS });
    return value;
  }

  /** Effective permissions of a user, globally (projectId null) or on one project. */
  async resolveEffectivePermissions(userId: string, projectId: string | null): Promise<EffectivePermissions> {
    const key = `${userId}:${projectId ?? GLOBAL}`;
    const now = Date.now();
    const hit = this.local.get(key);
    if (hit && hit.expires > now && (hit.value.valid_until === null || hit.value.valid_until > now))
      return hit.value;
    const generation = this.generation;
    let value = await this.cache.get<EffectivePermissions>(`rbac:perm:${key}`);
    // An entry without `related` was cached by a version before the members-only rule: resolve again.
    if (!value || value.related === undefined || (value.valid_until !== null && value.valid_until <= now)) {
      value = await this.resolveFromDatabase(this.db, userId, projectId);
      const ttl =
        value.valid_until === null
          ? this.ttlSeconds
          : Math.min(this.ttlSeconds, Math.floor((value.valid_until - now) / 1000));
      if (ttl > 0 && generation === this.generation) await this.cache.set(`rbac:perm:${key}`, value, ttl);
    }
    if (generation === this.generation && this.ttlSeconds > 0) {
      this.local.set(key, { value, expires: now + Math.min(LOCAL_TTL_MS, this.ttlSeconds * 1000) });
    }
    return value;
  }

  async resolveFromDatabase(
    db: DbOrTx,
    userId: string,
    projectId: string | null,
  ): Promise<EffectivePermissions> {
    const roleRows = await db
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
    const delegationRows = await db
      .selectFrom('delegations')
      .select(['permission', 'expires_at', 'project_id'])
      .where('delegate_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
      .where((eb) =>
        projectId
          ? eb.or([eb('project_id', 'is', null), eb('project_id', '=', projectId)])
          : eb('project_id', 'is', null),
      )
      .execute();
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
      const project = await db
        .selectFrom('projects')
        .select(['owner_id', 'visibility'])
        .where('id', '=', projectId)
        .executeTakeFirst();
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

  /** Effective permissions of a principal: a token's scopes and project restriction narrow them. */
  async principalPermissions(principal: Principal, projectId: string | null): Promise<Permission[]> {
    const token = principal.token;
    if (token?.projectId && projectId !== token.projectId) return [];
    const resolved = await this.resolveEffectivePermissions(principal.userId, projectId);
    return narrowToToken(principal, resolved.permissions);
  }

  /**
   * The visibility rule of 02-identity, the only place it is decided (routes, git HTTP, LFS and the
   * project list's SQL filter below follow it): public projects are visible to everyone; internal
   * ones to every signed-in caller; private ones only to the owner, members (a role bound to the
   * project), holders of an active delegation on it and global admins. A token restricted to another
   * project counts as anonymous here, and a token whose scopes lack `project:read` reads only public
   * projects.
   */
  async projectAccess(principal: Principal | null, projectId: string): Promise<ProjectAccess> {
    const project = await this.project(projectId);
    if (!project?.is_active) return { visible: false, readable: false, permissions: [] };
    const caller = principal?.token?.projectId && principal.token.projectId !== projectId ? null : principal;
    const isPublic = project.visibility === 'public';
    if (!caller) return { visible: isPublic, readable: isPublic, permissions: [] };
    const resolved = await this.resolveEffectivePermissions(caller.userId, projectId);
    const visible = isPublic || project.visibility === 'internal' || resolved.related;
    const permissions = visible ? narrowToToken(caller, resolved.permissions) : [];
    const tokenMayRead = !caller.token?.scopes || caller.token.scopes.includes('project:read');
    return { visible, readable: isPublic || (visible && tokenMayRead), permissions };
  }

  /**
   * SQL condition "project `p` is visible to the principal" for listings: the same rule as
   * `projectAccess`, as a filter over `projects as p`.
   */
  async visibleProjectsFilter(principal: Principal | null): Promise<RawBuilder<SqlBool>> {
    const restricted = principal?.token?.projectId ?? null;
    const tokenMayRead = !principal?.token?.scopes || principal.token.scopes.includes('project:read');
    if (!principal || !tokenMayRead) return sql<SqlBool>`p.visibility = 'public'`;
    if (restricted) {
      return (await this.projectAccess(principal, restricted)).readable
        ? sql<SqlBool>`p.id = ${restricted}`
        : sql<SqlBool>`(p.id = ${restricted} and p.visibility = 'public')`;
    }
    const global = await this.resolveEffectivePermissions(principal.userId, null);
    if (global.permissions.includes('admin:users')) return sql<SqlBool>`true`;
    const userId = principal.userId;
    return sql<SqlBool>`(p.visibility in ('public', 'internal')
      or p.owner_id = ${userId}
      or exists (select 1 from user_roles ur where ur.project_id = p.id and ur.user_id = ${userId})
      or exists (select 1 from delegations d where d.project_id = p.id and d.delegate_id = ${userId}
        and d.revoked_at is null and (d.expires_at is null or d.expires_at > now())))`;
  }

  async check(
    principal: Principal | null,
    permission: Permission,
    projectId: string | null,
  ): Promise<AccessDecision> {
    if (!projectId) {
      const granted = principal ? await this.principalPermissions(principal, null) : [];
      return granted.includes(permission) ? 'allowed' : 'denied';
    }
    const access = await this.projectAccess(principal, projectId);
    if (!access.visible) return 'hidden';
    if (access.permissions.includes(permission)) return 'allowed';
    if (permission === 'project:read' && access.readable) return 'allowed';
    return access.readable || access.permissions.length > 0 ? 'denied' : 'hidden';
  }

  async can(
    principal: Principal | null,
    permission: Permission,
    projectId: string | null = null,
  ): Promise<boolean> {
    return (await this.check(principal, permission, projectId)) === 'allowed';
  }

  /**
   * Whether a user can take part in a project's work as someone named by another user (assignee,
   * reviewer): they must exist, be active and be able to read the project. Throws a 422 naming the
   * user and the reason, with `path` as the detail path.
   */
  async assertParticipant(userId: string, projectId: string, role: string, path: string): Promise<void> {
    const detail = (message: string) => [{ path, message }];
    const user = await this.db
      .selectFrom('users')
      .select(['id', 'name', 'user_type', 'is_active'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!user) throw unprocessable(`${role} ${userId} does not exist`, detail('no such user'));
    if (!user.is_active)
      throw unprocessable(`${role} ${user.name} is deactivated`, detail('user is deactivated'));
    const principal: Principal = { userId: user.id, userName: user.name, userType: user.user_type };
    if (!(await this.can(principal, 'project:read', projectId))) {
      throw unprocessable(
        `${role} ${user.name} cannot read this project`,
        detail('user lacks project:read on the project'),
      );
    }
  }

  // ---------------------------------------------------------------- roles

  async listRoles() {
    const roles = await this.db.selectFrom('roles').selectAll().orderBy('name').execute();
    const grants = await this.db.selectFrom('role_permissions').selectAll().execute();
    return roles.map((r) => ({
      ...roleView(r),
      permissions: PERMISSIONS.filter((p) => grants.some((g) => g.role_id === r.id && g.permission === p)),
    }));
  }

  async getRole(db: DbOrTx, idOrName: string) {
    const role = await db
      .selectFrom('roles')
      .selectAll()
      .where(isUuid(idOrName) ? 'id' : 'name', '=', idOrName)
      .executeTakeFirst();
    if (!role) throw notFound('role');
    return role;
  }

  async rolePermissions(roleId: string): Promise<Permission[]> {
    await this.getRole(this.db, roleId);
    const rows = await this.db
      .selectFrom('role_permissions')
      .select('permission')
      .where('role_id', '=', roleId)
      .execute();
    const set = new Set(rows.map((r) => r.permission));
    return PERMISSIONS.filter((p) => set.has(p));
  }

  async createRole(actor: Actor, input: { name: string; description?: string; permissions?: Permission[] }) {
    const role = await this.mutate(async (trx) => {
      const role = await trx
        .insertInto('roles')
        .values({ name: input.name, description: input.description ?? '', is_system: false })
        .returningAll()
        .executeTakeFirstOrThrow();
      const permissions = [...new Set(input.permissions ?? [])];
      if (permissions.length > 0) {
        await trx
          .insertInto('role_permissions')
          .values(permissions.map((permission) => ({ role_id: role.id, permission })))
          .execute();
      }
      return {
        result: { ...roleView(role), permissions: PERMISSIONS.filter((p) => permissions.includes(p)) },
        audit: {
          actor,
          action: 'role.create',
          resourceType: 'role',
          resourceId: role.id,
          detail: { name: role.name, permissions },
        },
      };
    }, null);
    return role;
  }

  async setRolePermissions(actor: Actor, roleId: string, permissions: Permission[]) {
    const unique = PERMISSIONS.filter((p) => permissions.includes(p));
    return this.mutate(
      async (trx) => {
        const role = await this.getRole(trx, roleId);
        if (role.name === 'admin' && role.is_system && unique.length !== PERMISSIONS.length) {
          throw conflict('the system role admin always holds every permission', [
            { message: 'role is_system', is_system: true },
          ]);
        }
        await trx.deleteFrom('role_permissions').where('role_id', '=', role.id).execute();
        if (unique.length > 0) {
          await trx
            .insertInto('role_permissions')
            .values(unique.map((permission) => ({ role_id: role.id, permission })))
            .execute();
        }
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

  async deleteRole(actor: Actor, roleId: string) {
    await this.mutate(
      async (trx) => {
        const role = await this.getRole(trx, roleId);
        if (role.is_system)
          throw conflict('system roles cannot be deleted', [{ message: 'role is_system', is_system: true }]);
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

  // ---------------------------------------------------------------- bindings

  async listBindings(userId: string) {
    await this.requireUser(this.db, userId);
    const rows = await this.db
      .selectFrom('user_roles as ur')
      .innerJoin('roles as r', 'r.id', 'ur.role_id')
      .select(['ur.id', 'ur.user_id', 'ur.role_id', 'r.name as role', 'ur.project_id', 'ur.created_at'])
      .where('ur.user_id', '=', userId)
      .orderBy('r.name')
      .execute();
    return rows;
  }

  /** The user's role bindings on one project (none for an unknown user). */
  async memberBindings(projectId: string, userId: string) {
    return this.db
      .selectFrom('user_roles as ur')
      .innerJoin('roles as r', 'r.id', 'ur.role_id')
      .select(['ur.id', 'ur.user_id', 'ur.role_id', 'r.name as role', 'ur.project_id', 'ur.created_at'])
      .where('ur.user_id', '=', userId)
      .where('ur.project_id', '=', projectId)
      .orderBy('r.name')
      .execute();
  }

  async assignRole(
    actor: Actor,
    userId: string,
    input: { role: string; project_id?: string | null },
    action = 'role.assign',
  ) {
    return this.mutate(
      async (trx) => {
        await this.requireUser(trx, userId);
        const role = await this.getRole(trx, input.role);
        const projectId = input.project_id ?? null;
        if (projectId) await this.requireProject(trx, projectId);
        const existing = await trx
          .selectFrom('user_roles')
          .select('id')
          .where('user_id', '=', userId)
          .where('role_id', '=', role.id)
          .where((eb) => (projectId ? eb('project_id', '=', projectId) : eb('project_id', 'is', null)))
          .executeTakeFirst();
        if (existing)
          throw conflict(`user already has role ${role.name}${projectId ? ' on this project' : ''}`);
        const binding = await trx
          .insertInto('user_roles')
          .values({ user_id: userId, role_id: role.id, project_id: projectId })
          .returning(['id', 'user_id', 'role_id', 'project_id', 'created_at'])
          .executeTakeFirstOrThrow();
        return {
          result: { ...binding, role: role.name },
          audit: {
            actor,
            action,
            resourceType: 'user',
            resourceId: userId,
            projectId,
            detail: { role: role.name, project_id: projectId },
          },
        };
      },
      { userId },
    );
  }

  async removeRole(
    actor: Actor,
    userId: string,
    roleId: string,
    projectId: string | null,
    action = 'role.unassign',
  ) {
    await this.mutate(
      async (trx) => {
        const role = await this.getRole(trx, roleId);
        const deleted = await trx
          .deleteFrom('user_roles')
          .where('user_id', '=', userId)
          .where('role_id', '=', role.id)
          .where((eb) => (projectId ? eb('project_id', '=', projectId) : eb('project_id', 'is', null)))
          .returning('id')
          .execute();
        if (deleted.length === 0) throw notFound('role binding');
        return {
          result: undefined,
          audit: {
            actor,
            action,
            resourceType: 'user',
            resourceId: userId,
            projectId,
            detail: { role: role.name, project_id: projectId },
          },
        };
      },
      { userId },
    );
  }

  // ---------------------------------------------------------------- project members

  async listMembers(projectId: string) {
    const project = await this.requireProject(this.db, projectId);
    const rows = await this.db
      .selectFrom('user_roles as ur')
      .innerJoin('roles as r', 'r.id', 'ur.role_id')
      .innerJoin('users as u', 'u.id', 'ur.user_id')
      .select([
        'u.id as user_id',
        'u.name as user_name',
        'r.id as role_id',
        'r.name as role',
        'ur.created_at',
      ])
      .where('ur.project_id', '=', projectId)
      .orderBy('u.name')
      .orderBy('r.name')
      .execute();
    const owner = await this.db
      .selectFrom('users')
      .select(['id', 'name'])
      .where('id', '=', project.owner_id)
      .executeTakeFirstOrThrow();
    return {
      items: [
        { user_id: owner.id, user_name: owner.name, role_id: null, role: 'owner', created_at: null },
        ...rows,
      ],
      next_cursor: null,
    };
  }

  /**
   * The settings rule of 02-identity, in one place: what decides who can see or change a project —
   * visibility, default branch, name, archiving, members, protection rules, webhooks — belongs to
   * its owner (with a credential whose scopes allow `permission`) and to admins (`admin:users`).
   * A project the caller cannot see is a 404, as everywhere.
   */
  async assertCanChangeSettings(
    principal: Principal | null,
    projectId: string,
    permission: Permission = 'project:write',
  ): Promise<void> {
    const access = await this.projectAccess(principal, projectId);
    if (!access.visible || !principal) {
      if (!principal && access.visible) throw unauthorized();
      throw notFound('project');
    }
    if (principal.token?.projectId && principal.token.projectId !== projectId)
      throw forbidden('this token is restricted to another project');
    const project = await this.project(projectId);
    const tokenAllows = !principal.token?.scopes || principal.token.scopes.includes(permission);
    if (project?.owner_id === principal.userId && tokenAllows) return;
    if (await this.can(principal, 'admin:users')) return;
    throw forbidden('only the project owner or an admin may change this setting');
  }

  // ---------------------------------------------------------------- delegations

  async listDelegations(principal: Principal, filter: { active?: boolean }, seeAll: boolean) {
    let q = this.db
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
      ])
      .orderBy('d.created_at', 'desc')
      .limit(500);
    if (!seeAll)
      q = q.where((eb) =>
        eb.or([eb('d.delegator_id', '=', principal.userId), eb('d.delegate_id', '=', principal.userId)]),
      );
    // A project-restricted token sees only what concerns its project.
    const restricted = principal.token?.projectId;
    if (restricted) q = q.where('d.project_id', '=', restricted);
    if (filter.active) {
      q = q
        .where('d.revoked_at', 'is', null)
        .where((eb) => eb.or([eb('d.expires_at', 'is', null), eb('d.expires_at', '>', sql<Date>`now()`)]));
    }
    return { items: await q.execute(), next_cursor: null };
  }

  /**
   * A delegator may delegate only what they hold themselves on that scope (a token cannot pass on
   * more than its scopes). Callers check the right to delegate at all (admin:delegate or own agent session).
   */
  async createDelegation(
    actor: Actor,
    delegator: Principal,
    input: {
      delegate_id: string;
      permission: Permission;
      project_id?: string | null;
      expires_at?: Date | null;
      reason?: string;
    },
  ) {
    const projectId = input.project_id ?? null;
    if (projectId && !PROJECT_PERMISSIONS.includes(input.permission)) {
      throw unprocessable(
        `${input.permission} is a global permission and cannot be delegated on one project`,
      );
    }
    if (input.expires_at && input.expires_at.getTime() <= Date.now())
      throw unprocessable('expires_at must be in the future');
    if (input.delegate_id === delegator.userId) throw unprocessable('cannot delegate to yourself');
    // A project the delegator cannot see answers like one that does not exist.
    if (projectId && !(await this.projectAccess(delegator, projectId)).visible) throw notFound('project');
    const held = await this.principalPermissions(delegator, projectId);
    if (!held.includes(input.permission)) {
      throw forbidden(
        `you do not hold ${input.permission}${projectId ? ' on this project' : ''}, so you cannot delegate it`,
      );
    }
    return this.mutate(
      async (trx) => {
        await this.requireUser(trx, input.delegate_id);
        if (projectId) await this.requireProject(trx, projectId);
        const row = await trx
          .insertInto('delegations')
          .values({
            delegator_id: delegator.userId,
            delegate_id: input.delegate_id,
            permission: input.permission,
            project_id: projectId,
            expires_at: input.expires_at ?? null,
            reason: input.reason ?? '',
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        return {
          result: row,
          audit: {
            actor,
            action: 'delegation.create',
            resourceType: 'delegation',
            resourceId: row.id,
            projectId,
            detail: { delegate_id: row.delegate_id, permission: row.permission, expires_at: row.expires_at },
          },
        };
      },
      { userId: input.delegate_id },
    );
  }

  async revokeDelegation(actor: Actor, principal: Principal, id: string, mayRevokeAny: boolean) {
    const row = await this.db.selectFrom('delegations').selectAll().where('id', '=', id).executeTakeFirst();
    const party = row && (row.delegator_id === principal.userId || row.delegate_id === principal.userId);
    // Someone else's delegation answers like a random id; its delegate sees it, so may learn it exists.
    if (!row || (!party && !mayRevokeAny)) throw notFound('delegation');
    if (row.delegator_id !== principal.userId && !mayRevokeAny)
      throw forbidden('only the delegator or an admin:delegate holder may revoke');
    if (row.revoked_at)
      throw conflict('delegation is already revoked', [{ message: 'revoked', revoked_at: row.revoked_at }]);
    await this.mutate(
      async (trx) => {
        const updated = await trx
          .updateTable('delegations')
          .set({ revoked_at: sql<Date>`now()` })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .returning('id')
          .execute();
        if (updated.length === 0) throw conflict('delegation is already revoked');
        return {
          result: undefined,
          audit: {
            actor,
            action: 'delegation.revoke',
            resourceType: 'delegation',
            resourceId: id,
            projectId: row.project_id,
            detail: { permission: row.permission },
          },
        };
      },
      { userId: row.delegate_id },
    );
  }

  // ---------------------------------------------------------------- helpers

  /**
   * Runs a change and its audit row in one transaction, then invalidates the caches it affects.
   */
  async mutate<T>(
    fn: (trx: Tx) => Promise<{ result: T; audit: AuditEntry }>,
    invalidation: InvalidationMessage | null,
  ): Promise<T> {
    const result = await this.db.transaction().execute(async (trx) => {
      const { result, audit } = await fn(trx);
      await writeAudit(trx, audit);
      return result;
    });
    if (invalidation) await this.invalidate(invalidation);
    return result;
  }

  private async requireUser(db: DbOrTx, userId: string) {
    const user = await db
      .selectFrom('users')
      .select(['id', 'is_active'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!user) throw notFound('user');
    return user;
  }

  private async requireProject(db: DbOrTx, projectId: string) {
    const project = await db
      .selectFrom('projects')
      .select(['id', 'owner_id'])
      .where('id', '=', projectId)
      .executeTakeFirst();
    if (!project) throw notFound('project');
    return project;
  }
}

/** A token is an upper bound: its scopes narrow what the user could do. */
function narrowToToken(principal: Principal, permissions: Permission[]): Permission[] {
  const scopes = principal.token?.scopes;
  if (!scopes) return permissions;
  return permissions.filter((p) => scopes.includes(p));
}

function roleView(r: {
  id: string;
  name: string;
  description: string;
  is_system: boolean;
  created_at: Date;
  updated_at: Date;
}) {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    is_system: r.is_system,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}
