import { conflict, forbidden, notFound, unprocessable } from '../core/errors.js';
import type { Actor, Principal } from '../core/http.js';
import { type Page, pageByTime } from '../core/pagination.js';
import { type Permission, PROJECT_PERMISSIONS } from '../core/permissions.js';
import type { AccessResolver } from './access.js';
import {
  delegationById,
  delegationsWithNames,
  liveDelegation,
  projectById,
  revokeDelegationRow,
  userByRef,
} from './queries.js';
import { RBAC_REASONS } from './reasons.js';

type DelegationRow = Awaited<ReturnType<ReturnType<typeof delegationsWithNames>['executeTakeFirstOrThrow']>>;

const delegationView = ({ cursor_at: _cursor, ...row }: DelegationRow & { cursor_at?: string }) => row;

/** Time-bounded grants of one permission from a user to another (typically an agent). */
export class Delegations {
  constructor(private readonly access: AccessResolver) {}

  /** Newest first: those the caller granted or received (all with `seeAll`); `active`: live ones only. */
  async listDelegations(
    principal: Principal,
    filter: { active?: boolean; limit: number; cursor?: string | undefined },
    seeAll: boolean,
  ): Promise<Page<DelegationRow>> {
    let q = delegationsWithNames(this.access.db);
    if (!seeAll)
      q = q.where((eb) =>
        eb.or([eb('d.delegator_id', '=', principal.userId), eb('d.delegate_id', '=', principal.userId)]),
      );
    // A project-restricted token sees only what concerns its project.
    const restricted = principal.token?.projectId;
    if (restricted) q = q.where('d.project_id', '=', restricted);
    if (filter.active) q = q.where(liveDelegation);
    return pageByTime(q, { time: 'd.created_at', id: 'd.id' }, filter, delegationView);
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
      project_id?: string | null | undefined;
      expires_at?: Date | null | undefined;
      reason?: string | undefined;
    },
  ): Promise<DelegationRow> {
    const projectId = input.project_id ?? null;
    if (projectId && !PROJECT_PERMISSIONS.includes(input.permission)) {
      throw unprocessable(
        `${input.permission} is a global permission and cannot be delegated on one project`,
      ).because(RBAC_REASONS.globalPermission);
    }
    if (input.expires_at && input.expires_at.getTime() <= Date.now())
      throw unprocessable('expires_at must be in the future').because(RBAC_REASONS.expiryInPast);
    if (input.delegate_id === delegator.userId)
      throw unprocessable('cannot delegate to yourself').because(RBAC_REASONS.selfDelegation);
    // A project the delegator cannot see answers like one that does not exist.
    if (projectId && !(await this.access.projectAccess(delegator, projectId)).visible)
      throw notFound('project');
    const held = await this.access.principalPermissions(delegator, projectId);
    if (!held.includes(input.permission)) {
      throw forbidden(
        `you do not hold ${input.permission}${projectId ? ' on this project' : ''}, so you cannot delegate it`,
      ).because(RBAC_REASONS.notHeld);
    }
    return this.access.mutate(
      async (trx) => {
        if (!(await userByRef(trx, input.delegate_id))) throw notFound('user');
        if (projectId && !(await projectById(trx, projectId))) throw notFound('project');
        const { id } = await trx
          .insertInto('delegations')
          .values({
            delegator_id: delegator.userId,
            delegate_id: input.delegate_id,
            permission: input.permission,
            project_id: projectId,
            expires_at: input.expires_at ?? null,
            reason: input.reason ?? '',
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        const row = await delegationsWithNames(trx).where('d.id', '=', id).executeTakeFirstOrThrow();
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

  async revokeDelegation(
    actor: Actor,
    principal: Principal,
    id: string,
    mayRevokeAny: boolean,
  ): Promise<void> {
    const row = await delegationById(this.access.db, id);
    const party = row && (row.delegator_id === principal.userId || row.delegate_id === principal.userId);
    // Someone else's delegation answers like a random id; its delegate sees it, so may learn it exists.
    if (!row || (!party && !mayRevokeAny)) throw notFound('delegation');
    if (row.delegator_id !== principal.userId && !mayRevokeAny)
      throw forbidden('only the delegator or an admin:delegate holder may revoke').because(
        RBAC_REASONS.notDelegator,
      );
    const revoked = () =>
      conflict('delegation is already revoked', [{ message: 'revoked', revoked_at: row.revoked_at }]).because(
        RBAC_REASONS.delegationRevoked,
      );
    if (row.revoked_at) throw revoked();
    await this.access.mutate(
      async (trx) => {
        if ((await revokeDelegationRow(trx, id)).length === 0) throw revoked();
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
}
