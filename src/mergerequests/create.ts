import { writeAudit } from '../core/audit.js';
import { conflict, unprocessable } from '../core/errors.js';
import type { Actor, Principal } from '../core/http.js';
import { allocateNumber } from '../projects/index.js';
import type { MrContext } from './context.js';
import { branchSha } from './git.js';
import { findMr, type MergeRequestView, mrView, openMrFor } from './queries.js';
import { MR_REASONS } from './reasons.js';

export interface CreateInput {
  source_branch: string;
  target_branch: string;
  title: string;
  body?: string;
  reviewer_ids?: string[];
}

/** Opens a merge request: both branches exist and differ, one open merge request per pair. */
export async function createMergeRequest(
  c: MrContext,
  actor: Actor,
  principal: Principal,
  projectId: string,
  input: CreateInput,
): Promise<MergeRequestView> {
  const project = await c.projects.get(projectId);
  if (!project.is_active) throw conflict('the project is archived').because(MR_REASONS.projectArchived);
  if (input.source_branch === input.target_branch) {
    throw unprocessable('source and target branch must differ', [
      { path: 'body.target_branch', message: 'same as source_branch' },
    ]);
  }
  const dir = c.projects.repoDir(project);
  const [head, base] = await Promise.all([
    branchSha(dir, input.source_branch),
    branchSha(dir, input.target_branch),
  ]);
  const missing = [
    ...(head
      ? []
      : [{ path: 'body.source_branch', message: `branch ${input.source_branch} does not exist` }]),
    ...(base
      ? []
      : [{ path: 'body.target_branch', message: `branch ${input.target_branch} does not exist` }]),
  ];
  if (missing.length > 0) throw unprocessable('branch not found', missing);
  const reviewerIds = [...new Set(input.reviewer_ids ?? [])].filter((id) => id !== principal.userId);
  for (const id of reviewerIds) {
    await c.rbac.assertParticipant(id, projectId, 'reviewer', 'body.reviewer_ids');
  }
  const created = await c.db.transaction().execute(async (trx) => {
    const duplicate = await openMrFor(trx, projectId, input.source_branch, input.target_branch);
    if (duplicate) {
      throw conflict(`merge request !${duplicate.number} is already open for this source and target`, [
        { path: 'body.source_branch', message: `open as !${duplicate.number}` },
      ]).because(MR_REASONS.alreadyOpen);
    }
    const number = await allocateNumber(trx, projectId, 'merge_request');
    const mr = await trx
      .insertInto('merge_requests')
      .values({
        project_id: projectId,
        number,
        title: input.title,
        body: input.body ?? '',
        source_branch: input.source_branch,
        target_branch: input.target_branch,
        author_id: principal.userId,
        head_sha: head,
        base_sha: base,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    if (reviewerIds.length > 0) {
      await trx
        .insertInto('mr_reviewers')
        .values(reviewerIds.map((user_id) => ({ mr_id: mr.id, user_id, requested_by: principal.userId })))
        .execute();
    }
    await writeAudit(trx, {
      actor,
      action: 'mr.create',
      resourceType: 'merge_request',
      resourceId: mr.id,
      projectId,
      detail: { number, source: input.source_branch, target: input.target_branch, reviewers: reviewerIds },
    });
    return findMr(trx, projectId, number);
  });
  c.events.emit('mr.opened', {
    projectId,
    mergeRequestId: created.id,
    number: created.number,
    title: created.title,
    authorId: principal.userId,
    sourceBranch: created.source_branch,
    targetBranch: created.target_branch,
    headSha: created.head_sha!,
    recipientIds: [...reviewerIds, project.owner_id],
  });
  return mrView(created);
}
