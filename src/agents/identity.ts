import type { AuthService } from '../auth/index.js';
import { systemActor } from '../core/audit.js';
import type { Actor, Principal } from '../core/http.js';
import type { Permission } from '../core/permissions.js';
import type { RbacService } from '../rbac/index.js';
import type { DbOrTx } from '../store/db.js';

export interface AgentIdentity {
  userId: string;
  userName: string;
  tokenId: string;
  /** Shown to the agent process only; never stored, logged or answered. */
  token: string;
}

/**
 * The session's own identity: a user of type `agent` (no password: it cannot sign in), role
 * `agent` on the project (holds nothing by itself), one delegation from the requester per
 * permission — limited to the project, expiring with the session — and a token scoped to exactly
 * those permissions and that project. rbac refuses to delegate what the requester does not hold
 * (a requester's scoped token bounds it too). Each step is audited by its owner module.
 */
export async function createAgentIdentity(
  deps: { auth: AuthService; rbac: RbacService },
  actor: Actor,
  requester: Principal,
  session: { id: string; projectId: string; permissions: Permission[]; expiresAt: Date },
): Promise<AgentIdentity> {
  const name = `agent-${session.id.replaceAll('-', '').slice(0, 8)}`;
  const user = await deps.auth.createUser(actor, {
    name,
    email: `${name}@agents.invalid`,
    display_name: `Agent session ${session.id}`,
    user_type: 'agent',
  });
  try {
    await deps.rbac.assignRole(actor, user.id, { role: 'agent', project_id: session.projectId });
    for (const permission of session.permissions) {
      await deps.rbac.delegations.createDelegation(actor, requester, {
        delegate_id: user.id,
        permission,
        project_id: session.projectId,
        expires_at: session.expiresAt,
        reason: `agent session ${session.id}`,
      });
    }
    const agent: Principal = { userId: user.id, userName: user.name, userType: 'agent' };
    const token = await deps.auth.createToken(actor, agent, {
      name: `agent session ${session.id}`,
      scopes: session.permissions,
      project_id: session.projectId,
      expires_at: session.expiresAt,
    });
    return { userId: user.id, userName: user.name, tokenId: token.id, token: token.token };
  } catch (err) {
    await retireAgentIdentity(deps, null, user.id).catch(() => {});
    throw err;
  }
}

/**
 * Ends the identity for good: its live delegations revoked, the user deactivated (which ends its
 * tokens and sessions). Idempotent: a second call (reaper after runner) finds nothing to do.
 */
export async function retireAgentIdentity(
  deps: { auth: AuthService; rbac: RbacService; db?: DbOrTx },
  _tokenId: string | null,
  agentUserId: string,
): Promise<void> {
  const db = deps.db ?? deps.rbac.db;
  const live = await db
    .selectFrom('delegations')
    .select(['id'])
    .where('delegate_id', '=', agentUserId)
    .where('revoked_at', 'is', null)
    .execute();
  const admin: Principal = {
    userId: '00000000-0000-0000-0000-000000000000',
    userName: 'system',
    userType: 'human',
  };
  for (const d of live) {
    await deps.rbac.delegations.revokeDelegation(systemActor, admin, d.id, true).catch((err: unknown) => {
      // Revoked meanwhile by someone else: nothing left to do for this one.
      if ((err as { status?: number }).status !== 409) throw err;
    });
  }
  const user = await db
    .selectFrom('users')
    .select(['is_active'])
    .where('id', '=', agentUserId)
    .executeTakeFirst();
  if (user?.is_active) await deps.auth.users.deactivateUser(systemActor, agentUserId);
}
