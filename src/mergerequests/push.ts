import type { PushReceivedEvent } from '../git/index.js';
import type { MrContext } from './context.js';
import { isAncestor, newCommits } from './git.js';
import { openMrsTouching } from './queries.js';
import { recordMergeByPush } from './transitions.js';

/**
 * A push moved a branch: open merge requests from it get the new head (`mr.updated`); open ones into
 * it whose head is now contained in it were merged by the push (also how a merge whose bookkeeping
 * was cut short by a crash gets recorded).
 */
export async function onPush(c: MrContext, e: PushReceivedEvent): Promise<void> {
  if (!e.ref.startsWith('refs/heads/') || e.deleted) return;
  const branch = e.ref.slice('refs/heads/'.length);
  const open = await openMrsTouching(c.db, e.projectId, branch);
  if (open.length === 0) return;
  const dir = c.projects.repoDir(await c.projects.get(e.projectId));
  // Commits the push added to the branch: a merge request into it is merged when its head is one of them.
  let arrived: Set<string> | null = null;
  const arrivedInTarget = async (sha: string) => {
    if (e.created || /^0+$/.test(e.before)) return isAncestor(dir, sha, e.after);
    arrived ??= await newCommits(dir, e.before, e.after);
    return arrived.has(sha);
  };
  for (const mr of open) {
    if (mr.source_branch === branch && mr.head_sha !== e.after) {
      // The head of an open merge request is not its status: written here, guarded on still open.
      const changed = await c.db
        .updateTable('merge_requests')
        .set({ head_sha: e.after })
        .where('id', '=', mr.id)
        .where('status', '=', 'open')
        .executeTakeFirst();
      if (Number(changed.numUpdatedRows) > 0) {
        c.events.emit('mr.updated', {
          projectId: e.projectId,
          mergeRequestId: mr.id,
          number: mr.number,
          title: mr.title,
          sourceBranch: mr.source_branch,
          targetBranch: mr.target_branch,
          reason: 'push',
          headSha: e.after,
          previousHeadSha: mr.head_sha,
          actorId: e.pusherId,
        });
      }
    } else if (mr.target_branch === branch && mr.head_sha && (await arrivedInTarget(mr.head_sha))) {
      const done = await c.db.transaction().execute((trx) =>
        recordMergeByPush(
          trx,
          mr.id,
          { mergeSha: e.after, mergedBy: e.pusherId },
          {
            actor: { id: e.pusherId, name: e.pusherName, ip: null },
            action: 'mr.merged_by_push',
            projectId: e.projectId,
            detail: { number: mr.number, sha: e.after },
          },
        ),
      );
      if (done) {
        c.events.emit('mr.merged', {
          projectId: e.projectId,
          mergeRequestId: mr.id,
          number: mr.number,
          title: mr.title,
          mergedBy: e.pusherId,
          authorId: mr.author_id,
          targetBranch: mr.target_branch,
          mergeSha: e.after,
          strategy: null,
        });
      }
    }
  }
}
