import type { AuditEntry } from '../core/audit.js';
import { conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import type { DbOrTx, Tx } from '../store/db.js';
import type { AccessResolver } from './access.js';
import {
  bindingOf,
  bindings,
  deleteBinding,
  insertBinding,
  otherGlobalHolders,
  projectById,
  projectMembers,
  userByRef,
} from './queries.js';
import { RBAC_REASONS } from './reasons.js';
import type { Roles } from './roles.js';

/** Where a role is bound: globally (`projectId` null) or on one project; `action` names the audit row. */
interface BindingTarget {
  userRef: string;
  role: string;
  projectId: string | null;
  action: string;
}

/**
 * Role bindings of users, globally or on a project, and project membership (a role bound to the
 * project). Users are addressed by id or by name (any case), roles by id or name.
 */
export class RoleBindings {
  constructor(
    private readonly access: AccessResolver,
    private readonly roles: Roles,
  ) {}

  /** A user by id or name; unknown → 404 user. */
  async requireUser(db: DbOrTx, ref: string) {
    const user = await userByRef(db, ref);
    if (!user) throw notFound('user');
    return user;
  }

  async listBindings(userRef: string) {
    const user = await this.requireUser(this.access.db, userRef);
    return bindings(this.access.db).where('ur.user_id', '=', user.id).execute();
  }

  async assignRole(
    actor: Actor,
    userRef: string,
    input: { role: string; project_id?: string | null | undefined },
    action = 'role.assign',
  ) {
    const projectId = input.project_id ?? null;
    return this.change({ userRef, role: input.role, projectId, action }, actor, async (trx, user, role) => {
      if (projectId && !(await projectById(trx, projectId))) throw notFound('project');
      if (await bindingOf(trx, user.id, role.id, projectId))
        throw conflict(`user already has role ${role.name}${projectId ? ' on this project' : ''}`).because(
          RBAC_REASONS.alreadyBound,
        );
      const binding = await insertBinding(trx, user.id, role.id, projectId);
      return { ...binding, role: role.name };
    });
  }

  async removeRole(
    actor: Actor,
    userRef: string,
    roleRef: string,
    projectId: string | null,
    action = 'role.unassign',
  ): Promise<void> {
    await this.change({ userRef, role: roleRef, projectId, action }, actor, async (trx, user, role) => {
      // Someone must be left to administer the platform (the bootstrap admin is not special).
      if (role.is_system && role.name === 'admin' && projectId === null) {
        const bound = await bindingOf(trx, user.id, role.id, null);
        if (bound && (await otherGlobalHolders(trx, role.id, user.id)) === 0)
          throw conflict(`${user.name} is the last active admin; bind admin to someone else first`, [
            { message: 'last admin', user: user.name },
          ]).because(RBAC_REASONS.lastAdmin);
      }
      const deleted = await deleteBinding(trx, user.id, role.id, projectId);
      if (deleted.length === 0) throw notFound('role binding');
      return undefined;
    });
  }

  /**
   * The one shape of a binding change: user and role looked up in the transaction, the change, its
   * audit row (on the user, naming role and project), then the user's cached permissions dropped.
   */
  private async change<T>(
    target: BindingTarget,
    actor: Actor,
    apply: (
      trx: Tx,
      user: { id: string; name: string },
      role: { id: string; name: string; is_system: boolean },
    ) => Promise<T>,
  ): Promise<T> {
    let userId = '';
    const result = await this.access.mutate(async (trx) => {
      const user = await this.requireUser(trx, target.userRef);
      userId = user.id;
      const role = await this.roles.getRole(trx, target.role);
      const result = await apply(trx, user, role);
      const audit: AuditEntry = {
        actor,
        action: target.action,
        resourceType: 'user',
        resourceId: user.id,
        projectId: target.projectId,
        detail: { role: role.name, project_id: target.projectId },
      };
      return { result, audit };
    }, null);
    await this.access.invalidate({ userId });
    return result;
  }

  // ---------------------------------------------------------------- project members

  async listMembers(projectId: string) {
    const project = await projectById(this.access.db, projectId);
    if (!project) throw notFound('project');
    const rows = await projectMembers(this.access.db, projectId);
    const owner = await this.requireUser(this.access.db, project.owner_id);
    return {
      items: [
        { user_id: owner.id, user_name: owner.name, role_id: null, role: 'owner', created_at: null },
        ...rows,
      ],
      next_cursor: null,
    };
  }

  addMember(actor: Actor, projectId: string, userRef: string, role: string) {
    return this.assignRole(actor, userRef, { role, project_id: projectId }, 'project.member_add');
  }

  /** Removes the member's role `role` (id or name), or their only role; an unknown user is "member not found". */
  async removeMember(
    actor: Actor,
    projectId: string,
    userRef: string,
    role: string | undefined,
  ): Promise<void> {
    const user = await userByRef(this.access.db, userRef);
    const held = user
      ? (
          await bindings(this.access.db)
            .where('ur.user_id', '=', user.id)
            .where('ur.project_id', '=', projectId)
            .execute()
        ).filter((b) => !role || b.role === role || b.role_id === role)
      : [];
    const [binding, ...rest] = held;
    if (!user || !binding) throw notFound('member');
    if (rest.length > 0)
      throw conflict('the user has several roles on this project; say which with ?role=', [
        { message: 'roles', roles: held.map((b) => b.role) },
      ]).because(RBAC_REASONS.severalRoles);
    await this.removeRole(actor, user.id, binding.role_id, projectId, 'project.member_remove');
  }
}
