import { sql } from 'kysely';
import type { DbOrTx } from '../store/db.js';
import {
  type NotificationStatus,
  notificationStatusTransitions,
  transitionSources,
} from '../store/schema.js';
import type { NotificationRow } from './queries.js';

/**
 * The only writer of `notifications.status`. Every transition is a guarded
 * `UPDATE … WHERE status IN (<sources>) RETURNING`: a row another instance (or the reader) moved
 * meanwhile is left as it is and the caller gets nothing back. The sources of each named transition
 * are checked against the schema's transition table when this file loads.
 */

export const NOTIFICATION_TRANSITIONS = {
  sent: transitionSources(notificationStatusTransitions, 'notification sent', ['pending'], 'sent'),
  failed: transitionSources(notificationStatusTransitions, 'notification failed', ['pending'], 'failed'),
  read: transitionSources(notificationStatusTransitions, 'notification read', ['pending', 'sent'], 'read'),
} as const satisfies Partial<Record<NotificationStatus, readonly NotificationStatus[]>>;

/** Statuses an in-app notification can be marked read from (others answer 409). */
export const READABLE: readonly NotificationStatus[] = NOTIFICATION_TRANSITIONS.read;

/** pending → sent: the delivery went out (or, in-app, was pushed to the user's streams). */
export async function markNotificationSent(db: DbOrTx, id: string): Promise<NotificationRow | undefined> {
  return db
    .updateTable('notifications')
    .set({ status: 'sent', sent_at: sql<Date>`now()`, next_attempt_at: null, error: null })
    .where('id', '=', id)
    .where('status', 'in', NOTIFICATION_TRANSITIONS.sent)
    .returningAll()
    .executeTakeFirst();
}

/** pending → failed: a permanent delivery error, or the last attempt failed. */
export async function markNotificationFailed(
  db: DbOrTx,
  id: string,
  error: string,
): Promise<NotificationRow | undefined> {
  return db
    .updateTable('notifications')
    .set({ status: 'failed', error, next_attempt_at: null })
    .where('id', '=', id)
    .where('status', 'in', NOTIFICATION_TRANSITIONS.failed)
    .returningAll()
    .executeTakeFirst();
}

/**
 * pending/sent → read for the user's in-app notifications: one (`id`) or all of them, within a
 * project when the caller's token is restricted to one. Returns the rows that moved.
 */
export async function markNotificationsRead(
  db: DbOrTx,
  scope: { userId: string; id?: string; projectId: string | null },
): Promise<NotificationRow[]> {
  return db
    .updateTable('notifications')
    .set({ status: 'read', read_at: sql<Date>`now()` })
    .where('user_id', '=', scope.userId)
    .where('channel', '=', 'in_app')
    .$if(scope.id !== undefined, (q) => q.where('id', '=', scope.id!))
    .$if(scope.projectId !== null, (q) => q.where('project_id', '=', scope.projectId!))
    .where('status', 'in', NOTIFICATION_TRANSITIONS.read)
    .returningAll()
    .execute();
}
