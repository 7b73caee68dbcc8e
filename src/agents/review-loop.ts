import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
import type { Principal } from '../core/http.js';
import type { Db } from '../store/db.js';
import type { AgentsService } from './service.js';

/** A comment addressed to the agent: `@agent` at its very start, then the request. */
const ADDRESSED = /^@agent\b[:,]?\s*([\s\S]*)$/i;

/**
 * The review loop: a merge request comment starting with `@agent` starts a session as the comment's
 * author (who needs agent:run on the project) on the MR's source branch, so its pushes update the
 * MR. The prompt is the MR's title and description plus the comment.
 */
export function subscribeReviewLoop(
  events: EventBus,
  db: Db,
  service: AgentsService,
  log: Logger,
): () => void {
  return events.on('mr.commented', async (e) => {
    const match = ADDRESSED.exec(e.body.trim());
    if (!match || e.status !== 'open') return;
    try {
      const user = await db
        .selectFrom('users')
        .select(['id', 'name', 'user_type', 'is_active'])
        .where('id', '=', e.actorId)
        .executeTakeFirst();
      if (!user?.is_active || user.user_type === 'agent') return;
      const principal: Principal = { userId: user.id, userName: user.name, userType: user.user_type };
      if (!(await service.canRun(principal, e.projectId))) return;
      const mr = await db
        .selectFrom('merge_requests')
        .select(['number', 'title', 'body', 'source_branch'])
        .where('id', '=', e.mergeRequestId)
        .executeTakeFirst();
      if (!mr) return;
      const prompt = [
        `You are working on merge request !${mr.number} (${mr.title}) on its source branch ${mr.source_branch}.`,
        mr.body ? `\nIts description:\n${mr.body}` : '',
        `\nA reviewer asked:\n${match[1] || '(no further text)'}`,
        '\nCommit your changes and push the branch: the merge request updates with it.',
      ].join('\n');
      await service.create({ id: user.id, name: user.name, ip: null }, principal, e.projectId, {
        prompt,
        branch: mr.source_branch,
        merge_request_number: mr.number,
      });
    } catch (err) {
      log.warn({ err, mergeRequestId: e.mergeRequestId }, 'could not start an agent session from a comment');
    }
  });
}
