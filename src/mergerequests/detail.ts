import type { CheckViewer, MrContext } from './context.js';
import { type CommitInfo, commitsBetween, type DiffStats, diffStats, mergeBase } from './git.js';
import { checkMergeable } from './mergeability.js';
import { findMr, listComments, listReviewers, listReviews, mrView } from './queries.js';

/**
 * Everything a reviewer needs: reviews, comments, commits, diff stats, approvals, checks, and
 * whether it can be merged now with the list of what blocks it (`checkMergeable`, which the merge
 * itself obeys).
 */
export async function mergeRequestDetail(
  c: MrContext,
  projectId: string,
  number: number,
  viewer: CheckViewer,
) {
  const project = await c.projects.get(projectId);
  const mr = await findMr(c.db, projectId, number);
  const dir = c.projects.repoDir(project);
  // The merge rules do not depend on who merges (admins included), so neither does the answer.
  const m = await checkMergeable(c, project, mr, { viewer });
  const { head, targetTip } = m;
  const target = mr.status === 'open' ? targetTip : (mr.base_sha ?? targetTip);
  let commits: CommitInfo[] = [];
  let diff: DiffStats | null = null;
  if (head && target && mr.status !== 'merged') {
    const base = (await mergeBase(dir, target, head)) ?? target;
    [commits, diff] = await Promise.all([commitsBetween(dir, target, head), diffStats(dir, base, head)]);
  } else if (mr.status === 'merged' && mr.head_sha && mr.base_sha) {
    const base = (await mergeBase(dir, mr.base_sha, mr.head_sha)) ?? mr.base_sha;
    [commits, diff] = await Promise.all([
      commitsBetween(dir, base, mr.head_sha),
      diffStats(dir, base, mr.head_sha),
    ]);
  }
  const [reviews, comments, reviewers] = await Promise.all([
    listReviews(c.db, mr.id),
    listComments(c.db, mr.id),
    listReviewers(c.db, mr.id),
  ]);
  const mergeable = m.blockers.length === 0;
  return {
    ...mrView(mr),
    head_sha: head,
    target_sha: targetTip,
    reviewers,
    reviews: reviews.map((r) => ({
      id: r.id,
      reviewer: { id: r.reviewer_id, name: r.reviewer_name },
      verdict: r.verdict,
      body: r.body,
      commit_sha: r.commit_sha,
      stale: r.commit_sha !== head,
      created_at: r.created_at,
    })),
    comments: comments.map((cm) => ({
      id: cm.id,
      author: { id: cm.author_id, name: cm.author_name },
      body: cm.body,
      created_at: cm.created_at,
      updated_at: cm.updated_at,
    })),
    commits,
    diff_stats: diff,
    mergeability: m.git ? { mergeable, ...m.git } : null,
    approvals: {
      required: m.protection.required_approvals,
      given: m.approvals.approved_by.length,
      approved_by: m.approvals.approved_by,
      changes_requested_by: m.approvals.changes_requested_by,
    },
    checks: { required: m.protection.require_pipeline, latest_pipeline: m.pipeline, runs: m.runs },
    mergeable,
    blockers: m.blockers,
  };
}
