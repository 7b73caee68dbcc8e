import { sql } from 'kysely';
import type { Actor, Principal } from '../core/http.js';
import type { ProjectRow } from '../projects/index.js';
import type { MrContext } from './context.js';
import {
  branchSha,
  commitsBetween,
  compareAndSwapBranch,
  isAncestor,
  MergeConflictError,
  type MergeStrategy,
  NotFastForwardError,
  NothingToMergeError,
  prepareMerge,
} from './git.js';
import { checkMergeable, mergeConflict, notFastForward, refusal } from './mergeability.js';
import { commitIdentity, findMr, type MergeRequestView, type MrRow, mrView } from './queries.js';
import { MR_REASONS } from './reasons.js';
import { recordMerge } from './transitions.js';

export interface MergeInput {
  strategy?: MergeStrategy;
  message?: string;
  expected_head_sha?: string;
}

/** How often a merge is recomputed when the target moved under it before giving up with a 409. */
const CAS_ATTEMPTS = 5;

/**
 * Merges an open merge request whose `checkMergeable` has no blocker (refusing with the first one),
 * publishes it with compare-and-swap, records it and announces it. The caller runs it in the target
 * branch's queue, so merges on this instance do not race each other; other instances lose the swap
 * and recompute.
 */
export async function mergeMergeRequest(
  c: MrContext,
  actor: Actor,
  principal: Principal,
  project: ProjectRow,
  number: number,
  input: MergeInput,
): Promise<MergeRequestView> {
  const strategy = input.strategy ?? 'merge';
  const mr = await findMr(c.db, project.id, number);
  const check = await checkMergeable(c, project, mr, {
    strategy,
    ...(input.expected_head_sha ? { expectedHeadSha: input.expected_head_sha } : {}),
  });
  const [blocker] = check.blockers;
  if (blocker) throw refusal(blocker);
  const head = check.sourceTip!;
  const message =
    input.message ??
    (strategy === 'squash'
      ? `${mr.title} (!${mr.number})\n\n${mr.body}`.trimEnd()
      : `Merge branch '${mr.source_branch}' into '${mr.target_branch}'\n\n${mr.title} (!${mr.number})`);
  const published = await publish(c, project, mr, { head, strategy, message, actor, principal });
  const { merged, moved } = await c.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('mr_merge_intents').where('mr_id', '=', mr.id).execute();
    const moved = await recordMerge(
      trx,
      mr.id,
      {
        strategy,
        mergeSha: published.newSha,
        mergedBy: principal.userId,
        headSha: head,
        baseSha: published.targetSha,
      },
      {
        actor,
        action: 'mr.merge',
        projectId: project.id,
        detail: { number, strategy, merge_sha: published.newSha, target: mr.target_branch },
      },
    );
    return { merged: await findMr(trx, project.id, number), moved };
  });
  // Not moved: a stalled request whose merge recoverMerges already recorded and announced.
  if (moved) await announce(c, project, mr, principal, { ...published, strategy });
  return mrView(merged);
}

/**
 * The git side: computes the merge commit on the target's current tip and swaps the branch to it
 * only if the tip is still that one; recomputes when another writer moved it meanwhile.
 */
async function publish(
  c: MrContext,
  project: ProjectRow,
  mr: MrRow,
  opts: { head: string; strategy: MergeStrategy; message: string; actor: Actor; principal: Principal },
): Promise<{ targetSha: string; newSha: string }> {
  const dir = c.projects.repoDir(project);
  const [committer, author] = await Promise.all([
    commitIdentity(c.db, opts.principal.userId),
    commitIdentity(c.db, mr.author_id),
  ]);
  for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
    const targetSha = await branchSha(dir, mr.target_branch);
    if (!targetSha) {
      throw refusal({
        reason: MR_REASONS.targetBranchMissing,
        message: `target branch ${mr.target_branch} no longer exists`,
        details: [],
      });
    }
    let newSha: string;
    try {
      ({ newSha } = await prepareMerge(dir, {
        targetSha,
        sourceSha: opts.head,
        strategy: opts.strategy,
        message: `${opts.message}\n`,
        author,
        committer,
      }));
    } catch (err) {
      if (err instanceof MergeConflictError) throw refusal(mergeConflict(err.files));
      if (err instanceof NotFastForwardError) throw refusal(notFastForward());
      if (err instanceof NothingToMergeError) {
        throw refusal({
          reason: MR_REASONS.nothingToMerge,
          message: `nothing to merge: ${err.message}`,
          details: [],
        });
      }
      throw err;
    }
    // Written ahead of the swap: a crash between the swap and the database record leaves this row
    // for recoverMerges to complete or drop.
    const intent = {
      mr_id: mr.id,
      project_id: project.id,
      target_branch: mr.target_branch,
      target_sha: targetSha,
      new_sha: newSha,
      head_sha: opts.head,
      strategy: opts.strategy,
      merged_by: opts.principal.userId,
      actor: JSON.stringify(opts.actor),
      merged_by_name: opts.principal.userName,
    };
    await c.db
      .insertInto('mr_merge_intents')
      .values(intent)
      .onConflict((oc) => oc.column('mr_id').doUpdateSet({ ...intent, created_at: new Date() }))
      .execute();
    if (await compareAndSwapBranch(dir, mr.target_branch, newSha, targetSha, `merge !${mr.number}`)) {
      return { targetSha, newSha };
    }
    await c.db.deleteFrom('mr_merge_intents').where('mr_id', '=', mr.id).execute();
    c.log.info({ project: project.id, mr: mr.number, attempt }, 'target branch moved during merge; retrying');
  }
  throw refusal({
    reason: MR_REASONS.targetMoved,
    message: `target branch ${mr.target_branch} kept moving; try again`,
    details: [],
  });
}

/** How old an intent must be before recovery treats its merge as interrupted (a live one takes ms). */
export const MERGE_INTENT_GRACE_MS = 10_000;

/**
 * Completes or drops the merges a crash interrupted between the branch swap and the database record
 * (one instance at a time: the scheduler's lease; rows locked while handled). The branch holding the
 * intended merge commit means the swap happened: the merge is recorded (audited as the original
 * request's actor) and announced like a live one. Otherwise the swap never happened and the intent
 * goes. Returns how many merges it completed.
 */
export async function recoverMerges(c: MrContext, graceMs = MERGE_INTENT_GRACE_MS): Promise<number> {
  const stale = await c.db
    .selectFrom('mr_merge_intents')
    .select('mr_id')
    .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${graceMs / 1000})`)
    .execute();
  let completed = 0;
  for (const { mr_id } of stale) {
    const done = await c.db.transaction().execute(async (trx) => {
      const intent = await trx
        .selectFrom('mr_merge_intents')
        .selectAll()
        .where('mr_id', '=', mr_id)
        .forUpdate()
        .skipLocked()
        .executeTakeFirst();
      if (!intent) return null;
      await trx.deleteFrom('mr_merge_intents').where('mr_id', '=', mr_id).execute();
      const project = await c.projects.get(intent.project_id, trx);
      const dir = c.projects.repoDir(project);
      const tip = await branchSha(dir, intent.target_branch);
      if (!tip || !(await isAncestor(dir, intent.new_sha, tip))) return null;
      const { number } = await trx
        .selectFrom('merge_requests')
        .select('number')
        .where('id', '=', mr_id)
        .executeTakeFirstOrThrow();
      const mr = await findMr(trx, project.id, number);
      const moved = await recordMerge(
        trx,
        mr_id,
        {
          strategy: intent.strategy,
          mergeSha: intent.new_sha,
          mergedBy: intent.merged_by,
          headSha: intent.head_sha,
          baseSha: intent.target_sha,
        },
        {
          actor: intent.actor,
          action: 'mr.merge',
          projectId: project.id,
          detail: {
            number: mr.number,
            strategy: intent.strategy,
            merge_sha: intent.new_sha,
            target: intent.target_branch,
            recovered: true,
          },
        },
      );
      return moved ? { project, mr, intent } : null;
    });
    if (!done) continue;
    completed++;
    const { project, mr, intent } = done;
    c.log.warn(
      { project: project.id, mr: mr.number, merge_sha: intent.new_sha },
      'completed a merge interrupted after its branch swap',
    );
    await announce(
      c,
      project,
      mr,
      { userId: intent.merged_by, userName: intent.merged_by_name },
      { targetSha: intent.target_sha, newSha: intent.new_sha, strategy: intent.strategy },
    );
  }
  return completed;
}

/** After commit: `mr.merged`, and the target's move as a push (pipelines on the target, push webhooks). */
async function announce(
  c: MrContext,
  project: ProjectRow,
  mr: MrRow,
  principal: Pick<Principal, 'userId' | 'userName'>,
  m: { targetSha: string; newSha: string; strategy: MergeStrategy },
): Promise<void> {
  c.events.emit('mr.merged', {
    projectId: project.id,
    mergeRequestId: mr.id,
    number: mr.number,
    title: mr.title,
    mergedBy: principal.userId,
    authorId: mr.author_id,
    targetBranch: mr.target_branch,
    mergeSha: m.newSha,
    strategy: m.strategy,
  });
  const commits = await commitsBetween(c.projects.repoDir(project), m.targetSha, m.newSha, 100);
  c.events.emit('push.received', {
    projectId: project.id,
    ref: `refs/heads/${mr.target_branch}`,
    before: m.targetSha,
    after: m.newSha,
    created: false,
    deleted: false,
    pusherId: principal.userId,
    pusherName: principal.userName,
    commits: commits.map((cm) => ({
      sha: cm.sha,
      author: cm.author_name,
      email: cm.author_email,
      date: cm.authored_at,
      message: cm.title,
    })),
  });
}
