import { type Selectable, sql } from 'kysely';
import { type Page, pageByTime } from '../core/pagination.js';
import type { Db, DbOrTx } from '../store/db.js';
import type { NotificationChannel, NotificationStatus, NotificationsTable } from '../store/schema.js';
import type { NotificationView, PreferenceView } from './schemas.js';

export type NotificationRow = Selectable<NotificationsTable>;

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

export function notificationView(r: NotificationRow): NotificationView {
  return {
    id: r.id,
    type: r.type,
    subject: r.subject,
    body: r.body,
    channel: r.channel,
    status: r.status,
    project_id: r.project_id,
    ref_type: r.ref_type,
    ref_id: r.ref_id,
    group_count: r.group_count,
    attempts: r.attempts,
    error: r.error,
    created_at: iso(r.created_at)!,
    sent_at: iso(r.sent_at),
    read_at: iso(r.read_at),
  };
}

export interface ListFilter {
  status?: NotificationStatus;
  type?: string;
  channel: NotificationChannel | 'all';
  limit: number;
  cursor?: string;
}

/** The fields of one event every row written for it shares. */
export interface NotificationContent {
  project_id: string | null;
  type: string;
  subject: string;
  body: string;
  ref_type: string | null;
  ref_id: string | null;
}

/** What `notify()` needs about the recipients: active users, their preferences and webhooks. */
export async function recipientsOf(db: DbOrTx, userIds: string[], type: string) {
  const [users, prefs, hooks] = await Promise.all([
    db
      .selectFrom('users')
      .select(['id', 'email'])
      .where('id', 'in', userIds)
      .where('is_active', '=', true)
      .execute(),
    db
      .selectFrom('notification_preferences')
      .select(['user_id', 'event_type', 'channels'])
      .where('user_id', 'in', userIds)
      .where('event_type', 'in', [type, '*'])
      .execute(),
    db
      .selectFrom('notification_webhooks')
      .select(['user_id', 'url'])
      .where('user_id', 'in', userIds)
      .where('is_active', '=', true)
      .execute(),
  ]);
  return { users, prefs, hooks };
}

export async function insertNotifications(
  db: DbOrTx,
  rows: (NotificationContent & { user_id: string; channel: NotificationChannel; recipient: string | null })[],
): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insertInto('notifications')
    .values(rows.map((r) => ({ ...r, next_attempt_at: sql<Date>`now()` })))
    .execute();
}

/** E-mails queued or sent to the user within the last hour (the digest threshold). */
export async function emailsLastHour(db: DbOrTx, userId: string): Promise<number> {
  const counted = await db
    .selectFrom('notifications')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('user_id', '=', userId)
    .where('channel', '=', 'email')
    .where('status', 'in', ['pending', 'sent'])
    .where('created_at', '>', sql<Date>`now() - interval '1 hour'`)
    .executeTakeFirstOrThrow();
  return Number(counted.n);
}

/**
 * Folds one line into the user's pending digest, creating it when there is none (the partial unique
 * index on (user, channel, group_key) keeps one); lines beyond `maxLines` are only counted.
 */
export async function foldIntoDigest(
  db: DbOrTx,
  d: { userId: string; email: string; line: string; delaySeconds: number; maxLines: number },
): Promise<void> {
  await sql`
    insert into notifications (user_id, channel, type, subject, body, recipient, group_key, group_count, next_attempt_at)
    values (${d.userId}, 'email', 'digest', 'Notification digest', ${d.line}, ${d.email}, 'digest', 1,
            now() + make_interval(secs => ${d.delaySeconds}))
    on conflict (user_id, channel, group_key) where status = 'pending' and group_key is not null
    do update set group_count = notifications.group_count + 1,
      body = case when notifications.group_count < ${d.maxLines}
                  then notifications.body || E'\n' || excluded.body else notifications.body end`.execute(db);
}

/** The user's notifications, newest first; `onlyProject` narrows to one project. */
export function listNotifications(
  db: Db,
  userId: string,
  f: ListFilter,
  onlyProject: string | null,
): Promise<Page<NotificationView>> {
  let q = db.selectFrom('notifications').selectAll().where('user_id', '=', userId);
  if (onlyProject) q = q.where('project_id', '=', onlyProject);
  if (f.channel !== 'all') q = q.where('channel', '=', f.channel);
  if (f.status) q = q.where('status', '=', f.status);
  if (f.type) q = q.where('type', '=', f.type);
  return pageByTime(q, { time: 'created_at', id: 'id' }, f, notificationView);
}

export async function unreadCount(db: Db, userId: string, onlyProject: string | null): Promise<number> {
  const r = await db
    .selectFrom('notifications')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('user_id', '=', userId)
    .$if(onlyProject !== null, (q) => q.where('project_id', '=', onlyProject!))
    .where('channel', '=', 'in_app')
    .where('status', 'in', ['pending', 'sent'])
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** One notification of the user, locked for the change that follows. */
export async function lockNotification(
  db: DbOrTx,
  userId: string,
  id: string,
  onlyProject: string | null,
): Promise<NotificationRow | undefined> {
  return db
    .selectFrom('notifications')
    .selectAll()
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .$if(onlyProject !== null, (q) => q.where('project_id', '=', onlyProject!))
    .forUpdate()
    .executeTakeFirst();
}

export async function preferencesOf(db: DbOrTx, userId: string): Promise<PreferenceView[]> {
  const rows = await db
    .selectFrom('notification_preferences')
    .select(['event_type', 'channels'])
    .where('user_id', '=', userId)
    .orderBy('event_type')
    .execute();
  return rows.map((r) => ({ event_type: r.event_type, channels: [...r.channels] }));
}

export async function replacePreferences(db: DbOrTx, userId: string, items: PreferenceView[]): Promise<void> {
  await db.deleteFrom('notification_preferences').where('user_id', '=', userId).execute();
  if (items.length === 0) return;
  await db
    .insertInto('notification_preferences')
    .values(
      items.map((i) => ({
        user_id: userId,
        event_type: i.event_type,
        channels: sql<NotificationChannel[]>`${[...new Set(i.channels)]}::text[]`,
      })),
    )
    .execute();
}

/**
 * Claims up to `limit` due rows for one delivery attempt each: FOR UPDATE SKIP LOCKED so instances
 * never take the same row, leased by moving `next_attempt_at` past the lease, and `attempts` counted
 * here so a row that crashes the process repeatedly still reaches the limit. group_key is cleared:
 * events arriving while a digest is being sent start a new one instead of bumping a count the
 * e-mail in flight no longer reflects.
 */
export async function claimDue(db: Db, limit: number, leaseSeconds: number): Promise<NotificationRow[]> {
  const result = await sql<NotificationRow>`
    update notifications n
    set attempts = n.attempts + 1,
        next_attempt_at = now() + make_interval(secs => ${leaseSeconds}),
        group_key = null
    from (
      select id from notifications
      where status = 'pending' and next_attempt_at <= now()
      order by next_attempt_at, created_at
      limit ${limit}
      for update skip locked
    ) due
    where n.id = due.id
    returning n.*`.execute(db);
  return result.rows;
}

/** A failed attempt that will be tried again after `delayMs` (the row stays pending). */
export async function retryLater(db: Db, id: string, error: string, delayMs: number): Promise<void> {
  await db
    .updateTable('notifications')
    .set({ error, next_attempt_at: sql<Date>`now() + make_interval(secs => ${delayMs / 1000})` })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .execute();
}
