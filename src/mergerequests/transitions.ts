import { writeAudit } from '../core/audit.js';
import type { Actor } from '../core/http.js';
import type { DbOrTx } from '../store/db.js';
import {
  type MergeRequestStatus,
  type MergeStrategy,
  mergeRequestStatusTransitions,
  transitionSources,
} from '../store/schema.js';

/**
 * The only writer of `merge_requests.status`. Every transition is a guarded
 * `UPDATE … WHERE status IN (<sources>) RETURNING` plus its audit row in the same transaction: a
 * merge request another request or instance moved meanwhile is left as it is and the caller gets
 * undefined (it answers 409 with the current status). The sources are checked against the schema's
 * transition table when this file loads. Events are the caller's, emitted after commit.
 */

const MR = {
  close: transitionSources(mergeRequestStatusTransitions, 'mr close', ['open'], 'closed'),
  reopen: transitionSources(mergeRequestStatusTransitions, 'mr reopen', ['closed'], 'open'),
  // The target branch has moved by the time this is written: the merge happened, even if another
  // instance closed the merge request meanwhile.
  merge: transitionSources(mergeRequestStatusTransitions, 'mr merge', ['open', 'closed'], 'merged'),
  // A push is only taken as the merge of a merge request that is still open.
  mergeByPush: transitionSources(mergeRequestStatusTransitions, 'mr merged by push', ['open'], 'merged'),
} as const;

export interface TransitionAudit {
  actor: Actor;
  action: string;
  projectId: string;
  detail?: Record<string, unknown>;
}

type Changes = {
  closed_at?: Date | null;
  head_sha?: string;
  base_sha?: string;
  merge_strategy?: MergeStrategy | null;
  merge_sha?: string;
  merged_by?: string;
  merged_at?: Date;
};

async function move(
  db: DbOrTx,
  mrId: string,
  from: readonly MergeRequestStatus[],
  to: MergeRequestStatus,
  changes: Changes,
  audit: TransitionAudit,
): Promise<{ id: string; status: MergeRequestStatus } | undefined> {
  const moved = await db
    .updateTable('merge_requests')
    .set({ ...changes, status: to })
    .where('id', '=', mrId)
    .where('status', 'in', from)
    .returning(['id', 'status'])
    .executeTakeFirst();
  if (!moved) return undefined;
  await writeAudit(db, {
    actor: audit.actor,
    action: audit.action,
    resourceType: 'merge_request',
    resourceId: mrId,
    projectId: audit.projectId,
    ...(audit.detail ? { detail: audit.detail } : {}),
  });
  return moved;
}

/** open → closed. */
export function closeMergeRequest(db: DbOrTx, mrId: string, audit: TransitionAudit) {
  return move(db, mrId, MR.close, 'closed', { closed_at: new Date() }, audit);
}

/** closed → open, with the head the source branch has now (it may have moved while closed). */
export function reopenMergeRequest(db: DbOrTx, mrId: string, headSha: string, audit: TransitionAudit) {
  return move(db, mrId, MR.reopen, 'open', { closed_at: null, head_sha: headSha }, audit);
}

/** open | closed → merged, after the merge API moved the target branch. */
export function recordMerge(
  db: DbOrTx,
  mrId: string,
  merge: { strategy: MergeStrategy; mergeSha: string; mergedBy: string; headSha: string; baseSha: string },
  audit: TransitionAudit,
) {
  return move(
    db,
    mrId,
    MR.merge,
    'merged',
    {
      merge_strategy: merge.strategy,
      merge_sha: merge.mergeSha,
      merged_by: merge.mergedBy,
      merged_at: new Date(),
      head_sha: merge.headSha,
      base_sha: merge.baseSha,
    },
    audit,
  );
}

/** open → merged, when a push brought the head into the target branch. */
export function recordMergeByPush(
  db: DbOrTx,
  mrId: string,
  merge: { mergeSha: string; mergedBy: string },
  audit: TransitionAudit,
) {
  return move(
    db,
    mrId,
    MR.mergeByPush,
    'merged',
    { merge_sha: merge.mergeSha, merged_by: merge.mergedBy, merged_at: new Date() },
    audit,
  );
}
