import type { EventBus } from '../core/events.js';
import type { Actor } from '../core/http.js';
import { type PushReceivedEvent, pushReplies } from '../git/index.js';
import type { MergeRequestOpenedEvent } from '../mergerequests/index.js';
import type { ProjectsService } from '../projects/index.js';
import type { Db } from '../store/db.js';
import type { MrAction } from './definition-types.js';
import type { PipelineService } from './service.js';

/**
 * The event triggers: `push.received` (branch and tag pushes; a push to the default branch also
 * refreshes the cron schedules) and merge requests opened / updated (pipeline on the source head,
 * linked to the MR).
 */
export function subscribeTriggers(
  events: EventBus,
  db: Db,
  service: PipelineService,
  projects: ProjectsService,
  publicUrl: string,
): (() => void)[] {
  const actorOf = async (userId: string): Promise<Actor> => {
    const u = await db.selectFrom('users').select('name').where('id', '=', userId).executeTakeFirst();
    return { id: userId, name: u?.name ?? 'unknown', ip: null };
  };

  const onMr = async (
    e: Pick<MergeRequestOpenedEvent, 'projectId' | 'mergeRequestId' | 'sourceBranch' | 'headSha'>,
    action: MrAction,
    userId: string,
  ) => {
    await service.create({
      projectId: e.projectId,
      trigger: 'mr',
      ref: `refs/heads/${e.sourceBranch}`,
      sha: e.headSha,
      actor: await actorOf(userId),
      triggeredBy: userId,
      mrId: e.mergeRequestId,
      mrAction: action,
    });
  };

  return [
    // The push's answer waits (bounded) for the pipeline it started: `remote: Pipeline #N: <link>`.
    events.on('push.received', (e: PushReceivedEvent) =>
      pushReplies.during(e, async () => {
        if (e.deleted || !/^refs\/(heads|tags)\//.test(e.ref) || !/^[0-9a-f]{7,64}$/.test(e.after))
          return undefined;
        const project = await projects.get(e.projectId);
        // Read once: the push pipeline and, on the default branch, the schedules both need it.
        const definition = await service.definitionAt(projects.repoDir(project), e.after);
        const outcome = await service.create({
          projectId: e.projectId,
          trigger: 'push',
          ref: e.ref,
          sha: e.after,
          actor: { id: e.pusherId, name: e.pusherName, ip: null },
          triggeredBy: e.pusherId,
          definition,
        });
        if (e.ref === `refs/heads/${project.default_branch}`) {
          await service.refreshSchedules(project, e.ref, definition);
        }
        if (!('created' in outcome)) return undefined;
        const p = outcome.created;
        return [
          `Pipeline #${p.number}: ${publicUrl}/api/projects/${project.owner_name}/${project.name}/pipelines/${p.number}`,
        ];
      }),
    ),
    events.on('mr.opened', (e) => onMr(e, 'opened', e.authorId)),
    events.on('mr.reopened', (e) => onMr(e, 'reopened', e.actorId)),
    events.on('mr.updated', async (e) => {
      if (e.reason !== 'push') return;
      await onMr(e, 'synchronized', e.actorId);
    }),
  ];
}
