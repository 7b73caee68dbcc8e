import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
import { type Db, transaction } from '../store/db.js';
import './events.js';
import type { NotifyService } from './service.js';
import type { NotifyInput } from './types.js';

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
  const send = (input: NotifyInput) =>
    limit(async () => {
      const n = await transaction(db, (trx) => service.notify(trx, input));
      if (n > 0) {
        log.debug({ type: input.type, rows: n }, 'notifications queued');
        afterCommit();
      }
    });
  const others = (ids: (string | null | undefined)[], actor: string | null | undefined) =>
    ids.filter((id) => id && id !== actor);

  return [
    events.on('mr.opened', (e) =>
      send({
        userIds: others(e.recipientIds, e.authorId),
        type: 'mr.opened',
        subject: `Merge request !${e.number} opened: ${e.title}`,
        refType: 'merge_request',
        refId: e.mergeRequestId,
        projectId: e.projectId,
      }),
    ),
    events.on('mr.merged', (e) =>
      send({
        userIds: others([e.authorId], e.mergedBy),
        type: 'mr.merged',
        subject: `Merge request !${e.number} merged: ${e.title}`,
        refType: 'merge_request',
        refId: e.mergeRequestId,
        projectId: e.projectId,
      }),
    ),
    events.on('issue.assigned', (e) =>
      send({
        userIds: others([e.assigneeId], e.assignedBy),
        type: 'issue.assigned',
        subject: `Issue #${e.number} assigned to you: ${e.title}`,
        refType: 'issue',
        refId: e.issueId,
        projectId: e.projectId,
      }),
    ),
    events.on('pipeline.finished', (e) => {
      // Failures go to the triggerer and the owner; successes only to whoever triggered the run.
      if (e.status === 'cancelled') return;
      const failed = e.status === 'failure';
      return send({
        userIds: failed ? [e.triggeredBy, e.ownerId] : [e.triggeredBy],
        type: failed ? 'pipeline.failed' : 'pipeline.succeeded',
        subject: `Pipeline ${failed ? 'failed' : 'succeeded'} on ${e.ref}`,
        refType: 'pipeline',
        refId: e.pipelineId,
        projectId: e.projectId,
      });
    }),
    events.on('deployment.changed', (e) =>
      send({
        userIds: [e.deployedBy, e.ownerId],
        type: e.status === 'failed' ? 'deployment.failed' : 'deployment.changed',
        subject: `Deployment to ${e.environment}: ${e.status}`,
        refType: 'deployment',
        refId: e.deploymentId,
        projectId: e.projectId,
      }),
    ),
    events.on('session.finished', (e) =>
      send({
        userIds: [e.requestedBy],
        type: e.status === 'failed' ? 'session.failed' : 'session.finished',
        subject: `Agent session ${e.status}`,
        refType: 'agent_session',
        refId: e.sessionId,
        projectId: e.projectId,
      }),
    ),
    events.on('alert.fired', (e) =>
      send({
        userIds: e.recipientIds,
        type: 'alert.fired',
        subject: `Alert firing: ${e.ruleName}`,
        body: e.message,
        refType: 'alert_event',
        refId: e.alertEventId,
        projectId: e.projectId,
      }),
    ),
    events.on('alert.resolved', (e) =>
      send({
        userIds: e.recipientIds,
        type: 'alert.resolved',
        subject: `Alert resolved: ${e.ruleName}`,
        body: e.message,
        refType: 'alert_event',
        refId: e.alertEventId,
        projectId: e.projectId,
      }),
    ),
  ];
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
