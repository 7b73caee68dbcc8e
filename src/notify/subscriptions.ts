import type { Logger } from 'pino';
import type { SessionFinishedEvent } from '../agents/events.js';
import type { DomainEvents, EventBus } from '../core/events.js';
import type { DeploymentChangedEvent } from '../deployer/index.js';
import type { IssueAssignedEvent } from '../issues/index.js';
import type { MergeRequestMergedEvent, MergeRequestOpenedEvent } from '../mergerequests/index.js';
import type { AlertEvent } from '../observe/events.js';
import type { PipelineFinishedEvent } from '../pipeline/index.js';
import { type Db, transaction } from '../store/db.js';
import type { NotifyService } from './service.js';
import type { NotifyInput } from './types.js';

type NotifiedEvent =
  | 'mr.opened'
  | 'mr.merged'
  | 'issue.assigned'
  | 'pipeline.finished'
  | 'deployment.changed'
  | 'session.finished'
  | 'alert.fired'
  | 'alert.resolved';

/** Who does not need telling: the one who did it. */
const others = (ids: (string | null | undefined)[], actor: string | null | undefined) =>
  ids.filter((id) => id && id !== actor);

const alert = (type: 'alert.fired' | 'alert.resolved', verb: string) => (e: AlertEvent) => ({
  userIds: e.recipientIds,
  type,
  subject: `Alert ${verb}: ${e.ruleName}`,
  body: e.message,
  refType: 'alert_event',
  refId: e.alertEventId,
  projectId: e.projectId,
});

/** The notification each handled event becomes (null: none). */
export const NOTIFICATIONS: { [K in NotifiedEvent]: (e: DomainEvents[K]) => NotifyInput | null } = {
  'mr.opened': (e: MergeRequestOpenedEvent) => ({
    userIds: others(e.recipientIds, e.authorId),
    type: 'mr.opened',
    subject: `Merge request !${e.number} opened: ${e.title}`,
    refType: 'merge_request',
    refId: e.mergeRequestId,
    projectId: e.projectId,
  }),
  'mr.merged': (e: MergeRequestMergedEvent) => ({
    userIds: others([e.authorId], e.mergedBy),
    type: 'mr.merged',
    subject: `Merge request !${e.number} merged: ${e.title}`,
    refType: 'merge_request',
    refId: e.mergeRequestId,
    projectId: e.projectId,
  }),
  'issue.assigned': (e: IssueAssignedEvent) => ({
    userIds: others([e.assigneeId], e.assignedBy),
    type: 'issue.assigned',
    subject: `Issue #${e.number} assigned to you: ${e.title}`,
    refType: 'issue',
    refId: e.issueId,
    projectId: e.projectId,
  }),
  'pipeline.finished': (e: PipelineFinishedEvent) => {
    // Failures go to the triggerer and the owner; successes only to whoever triggered the run.
    if (e.status === 'cancelled') return null;
    const failed = e.status === 'failure';
    return {
      userIds: failed ? [e.triggeredBy, e.ownerId] : [e.triggeredBy],
      type: failed ? 'pipeline.failed' : 'pipeline.succeeded',
      subject: `Pipeline ${failed ? 'failed' : 'succeeded'} on ${e.ref}`,
      refType: 'pipeline',
      refId: e.pipelineId,
      projectId: e.projectId,
    };
  },
  'deployment.changed': (e: DeploymentChangedEvent) => ({
    userIds: [e.deployedBy, e.ownerId],
    type: e.status === 'failed' ? 'deployment.failed' : 'deployment.changed',
    subject: `Deployment to ${e.environment}: ${e.status}`,
    refType: 'deployment',
    refId: e.deploymentId,
    projectId: e.projectId,
  }),
  'session.finished': (e: SessionFinishedEvent) => ({
    userIds: [e.requestedBy],
    type: e.status === 'failed' ? 'session.failed' : 'session.finished',
    subject: `Agent session ${e.status}`,
    refType: 'agent_session',
    refId: e.sessionId,
    projectId: e.projectId,
  }),
  'alert.fired': alert('alert.fired', 'firing'),
  'alert.resolved': alert('alert.resolved', 'resolved'),
};

/**
 * Turns domain events into notifications, each in its own transaction (the event is emitted after
 * the emitter's commit). Returns the unsubscribe functions.
 */
export function subscribeDomainEvents(
  events: EventBus,
  db: Db,
  service: NotifyService,
  log: Logger,
  afterCommit: () => void,
): (() => void)[] {
  const limit = concurrencyLimit(2);
  const send = (input: NotifyInput | null) =>
    input &&
    limit(async () => {
      const n = await transaction(db, (trx) => service.notify(trx, input));
      if (n > 0) {
        log.debug({ type: input.type, rows: n }, 'notifications queued');
        afterCommit();
      }
    });
  const subscribe = <K extends NotifiedEvent>(name: K) =>
    events.on(name, (e) => send(NOTIFICATIONS[name](e)) ?? undefined);
  return (Object.keys(NOTIFICATIONS) as NotifiedEvent[]).map(subscribe);
}

/**
 * Runs at most `max` tasks at once, the rest in arrival order. A storm of events (hundreds of failing
 * builds at once) must queue here rather than all wait for a pool connection and time out — the
 * per-user e-mail lock would otherwise hold pool connections while the rest starve.
 */
function concurrencyLimit(max: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}
