import { writeAudit } from '../core/audit.js';
import { conflict } from '../core/errors.js';
import type { Actor, Principal } from '../core/http.js';
import { mergeRequestStatusTransitions } from '../store/schema.js';
import type { MrContext } from './context.js';
import { branchSha } from './git.js';
import { findMr, type MergeRequestView, type MrRow, mrView } from './queries.js';
import { MR_REASONS } from './reasons.js';
import { closeMergeRequest, reopenMergeRequest } from './transitions.js';

export interface UpdateInput {
  title?: string;
  body?: string;
  status?: 'open' | 'closed';
}

/**
 * Edits title/body, closes or reopens. Runs in the target branch's queue (see `BranchQueue`), so a
 * merge in progress never ends with the branch moved and the merge request closed.
 */
export async function updateMergeRequest(
  c: MrContext,
  actor: Actor,
  principal: Principal,
  projectId: string,
  before: MrRow,
  input: UpdateInput,
): Promise<MergeRequestView> {
  const { number } = before;
  // Reopening picks up where the source branch is now (it may have moved while closed).
  const reopenHead =
    input.status === 'open' && before.status === 'closed'
      ? await branchSha(c.projects.repoDir(await c.projects.get(projectId)), before.source_branch)
      : null;
  let statusChange: 'closed' | 'reopened' | null = null;
  const updated = await c.db.transaction().execute(async (trx) => {
    const current = await trx
      .selectFrom('merge_requests')
      .select(['id', 'status'])
      .where('id', '=', before.id)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const edit: { title?: string; body?: string } = {};
    if (input.title !== undefined) edit.title = input.title;
    if (input.body !== undefined) edit.body = input.body;
    if (input.status !== undefined && input.status !== current.status) {
      const refused = () =>
        conflict(`the merge request is ${current.status}`, [
          { path: 'status', message: current.status },
        ]).because(MR_REASONS.alreadyMerged);
      if (!mergeRequestStatusTransitions[current.status].includes(input.status)) throw refused();
      const audit = {
        actor,
        action: input.status === 'closed' ? 'mr.close' : 'mr.reopen',
        projectId,
        detail: { number, fields: Object.keys(input) },
      };
      if (input.status === 'closed') {
        if (!(await closeMergeRequest(trx, before.id, audit))) throw refused();
        statusChange = 'closed';
      } else {
        if (!reopenHead) {
          throw conflict(`source branch ${before.source_branch} no longer exists`).because(
            MR_REASONS.sourceBranchMissing,
          );
        }
        if (!(await reopenMergeRequest(trx, before.id, reopenHead, audit))) throw refused();
        statusChange = 'reopened';
      }
    }
    if (Object.keys(edit).length > 0) {
      await trx.updateTable('merge_requests').set(edit).where('id', '=', before.id).execute();
    }
    // One audit row per request: the transition wrote it when the status changed.
    if (!statusChange) {
      await writeAudit(trx, {
        actor,
        action: 'mr.update',
        resourceType: 'merge_request',
        resourceId: before.id,
        projectId,
        detail: { number, fields: Object.keys(input) },
      });
    }
    return findMr(trx, projectId, number);
  });
  const base = {
    projectId,
    mergeRequestId: updated.id,
    number,
    title: updated.title,
    actorId: principal.userId,
  };
  if (statusChange === 'closed') c.events.emit('mr.closed', base);
  else if (statusChange === 'reopened') {
    c.events.emit('mr.reopened', {
      ...base,
      sourceBranch: updated.source_branch,
      targetBranch: updated.target_branch,
      headSha: updated.head_sha ?? '',
    });
  }
  if (input.title !== undefined || input.body !== undefined) {
    c.events.emit('mr.updated', {
      ...base,
      reason: 'edit',
      sourceBranch: updated.source_branch,
      targetBranch: updated.target_branch,
      headSha: updated.head_sha ?? '',
      previousHeadSha: updated.head_sha,
    });
  }
  return mrView(updated);
}
