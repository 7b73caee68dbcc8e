import { sql } from 'kysely';
import { writeAudit } from '../core/audit.js';
import { conflict } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import type { DbOrTx } from '../store/db.js';
import { type IssueStatus, issueStatuses, issueStatusTransitions } from '../store/schema.js';
import { ISSUE_REASONS } from './reasons.js';

/**
 * The one writer of `issues.status`: a change is allowed only along `issueStatusTransitions`, and
 * the UPDATE itself is guarded by the allowed sources, so a concurrent change that got there first
 * makes this one a refusal instead of a silent overwrite. Closing records who and when; reopening
 * clears both.
 */

/** The statuses that may become `to`. */
export function issueStatusSources(to: IssueStatus): IssueStatus[] {
  return issueStatuses.filter((from) => issueStatusTransitions[from].includes(to));
}

export interface IssueTransition {
  issue: { id: string; project_id: string; number: number; title: string };
  to: IssueStatus;
  actor: Actor & { id: string };
  /** Other fields changed by the same request: the transition's audit row names them too. */
  alsoChanged?: readonly string[];
}

/** Moves the issue to `to` and writes the audit row, in the caller's transaction. */
export async function transitionIssueStatus(
  trx: DbOrTx,
  t: IssueTransition,
): Promise<{ status: IssueStatus }> {
  const sources = issueStatusSources(t.to);
  const closing = t.to === 'closed';
  const updated =
    sources.length === 0
      ? undefined
      : await trx
          .updateTable('issues')
          .set(
            closing
              ? { status: t.to, closed_at: sql<Date>`now()`, closed_by: t.actor.id }
              : { status: t.to, closed_at: null, closed_by: null },
          )
          .where('id', '=', t.issue.id)
          .where('status', 'in', sources)
          .returning('status')
          .executeTakeFirst();
  if (!updated) {
    const current = await trx
      .selectFrom('issues')
      .select('status')
      .where('id', '=', t.issue.id)
      .executeTakeFirst();
    const status = current?.status ?? 'unknown';
    throw conflict(`the issue is ${status} and cannot become ${t.to}`, [
      { message: `status is ${status}`, status },
    ]).because(ISSUE_REASONS.invalidTransition);
  }
  await writeAudit(trx, {
    actor: t.actor,
    action: 'issue.update',
    resourceType: 'issue',
    resourceId: t.issue.id,
    projectId: t.issue.project_id,
    detail: {
      number: t.issue.number,
      title: auditTitle(t.issue.title),
      fields: [...(t.alsoChanged ?? []), 'status'],
      status: t.to,
    },
  });
  return updated;
}

/** Audit details name the issue by number and a short title; bodies never reach the audit log. */
export const auditTitle = (title: string) => (title.length > 80 ? `${title.slice(0, 80)}…` : title);
