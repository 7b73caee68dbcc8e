import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Logger } from 'pino';
import { type AuditEntry, writeAudit } from '../core/audit.js';
import { forbidden, notFound, unauthorized, unprocessable } from '../core/errors.js';
import type { AccessDecision, Principal } from '../core/http.js';
import type { Permission } from '../core/permissions.js';
import type { Cache } from '../store/cache/types.js';
import type { Db, Tx } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import { projectById, userByRef } from './queries.js';
import { RBAC_REASONS } from './reasons.js';
import { type EffectivePermissions, resolveFromDatabase } from './resolution.js';

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
export class AccessResolver {
  private readonly local = new Map<string, { value: EffectivePermissions; expires: number }>();
  private readonly projects = new Map<string, { value: ProjectInfo | null; expires: number }>();
  /** Bumped on every invalidation: a resolution that started before it is not cached. */
  private generation = 0;
  private readonly listeners: ((m: InvalidationMessage) => void)[] = [];
  private unsubscribe?: () => Promise<void>;

  constructor(
    readonly db: Db,
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
      const row = await projectById(this.db, projectId);
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
      value = await resolveFromDatabase(this.db, userId, projectId);
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
    const user = await userByRef(this.db, userId);
    if (!user)
      throw unprocessable(`${role} ${userId} does not exist`, detail('no such user')).because(
        RBAC_REASONS.notParticipant,
      );
    if (!user.is_active)
      throw unprocessable(`${role} ${user.name} is deactivated`, detail('user is deactivated')).because(
        RBAC_REASONS.notParticipant,
      );
    const principal: Principal = { userId: user.id, userName: user.name, userType: user.user_type };
    if (!(await this.can(principal, 'project:read', projectId))) {
      throw unprocessable(
        `${role} ${user.name} cannot read this project`,
        detail('user lacks project:read on the project'),
      ).because(RBAC_REASONS.notParticipant);
    }
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
      throw forbidden('this token is restricted to another project').because(RBAC_REASONS.tokenOtherProject);
    const project = await this.project(projectId);
    const tokenAllows = !principal.token?.scopes || principal.token.scopes.includes(permission);
    if (project?.owner_id === principal.userId && tokenAllows) return;
    if (await this.can(principal, 'admin:users')) return;
    throw forbidden('only the project owner or an admin may change this setting').because(
      RBAC_REASONS.notOwner,
    );
  }

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
}

/** A token is an upper bound: its scopes narrow what the user could do. */
function narrowToToken(principal: Principal, permissions: Permission[]): Permission[] {
  const scopes = principal.token?.scopes;
  if (!scopes) return permissions;
  return permissions.filter((p) => scopes.includes(p));
}
