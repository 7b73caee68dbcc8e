import { writeAudit } from '../core/audit.js';
import { conflict, forbidden } from '../core/errors.js';
import type { Actor, Principal } from '../core/http.js';
import type { MrContext } from './context.js';
import { findMr } from './queries.js';
import { MR_REASONS } from './reasons.js';

export interface ReviewInput {
  verdict: 'approve' | 'request_changes' | 'comment';
  body?: string;
}

/** A review of the current head: approve, request changes or comment (authors may only comment). */
export async function reviewMergeRequest(
  c: MrContext,
  actor: Actor,
  principal: Principal,
  projectId: string,
  number: number,
  input: ReviewInput,
) {
  const mr = await findMr(c.db, projectId, number);
  if (mr.status !== 'open') {
    throw conflict(`the merge request is ${mr.status}`, [{ path: 'status', message: mr.status }]).because(
      MR_REASONS.notOpen,
    );
  }
  if (input.verdict !== 'comment' && mr.author_id === principal.userId) {
    throw forbidden('you cannot approve or request changes on your own merge request').because(
      MR_REASONS.selfReview,
    );
  }
  const review = await c.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('mr_reviews')
      .values({
        mr_id: mr.id,
        reviewer_id: principal.userId,
        verdict: input.verdict,
        body: input.body ?? '',
        commit_sha: mr.head_sha,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await writeAudit(trx, {
      actor,
      action: 'mr.review',
      resourceType: 'merge_request',
      resourceId: mr.id,
      projectId,
      detail: { number, verdict: input.verdict, commit_sha: mr.head_sha },
    });
    return row;
  });
  c.events.emit('mr.reviewed', {
    projectId,
    mergeRequestId: mr.id,
    number,
    title: mr.title,
    actorId: principal.userId,
    authorId: mr.author_id,
    verdict: input.verdict,
  });
  return {
    id: review.id,
    reviewer: { id: principal.userId, name: principal.userName },
    verdict: review.verdict,
    body: review.body,
    commit_sha: review.commit_sha,
    created_at: review.created_at,
  };
}
