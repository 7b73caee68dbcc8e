import { type Selectable, sql } from 'kysely';
import type { Logger } from 'pino';
import { writeAudit } from '../core/audit.js';
import { badRequest, conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { OutboundClient, OutboundError } from '../core/outbound.js';
import { type Page, pageByTime } from '../core/pagination.js';
import { openSealed, type SealedColumn, seal, secretsKey } from '../secrets/index.js';
import { type Db, type DbOrTx, transaction } from '../store/db.js';
import {
  type NotificationChannel,
  type NotificationStatus,
  type NotificationsTable,
  notificationStatusTransitions,
} from '../store/schema.js';
import { validAddress } from './email.js';
import {
  emailedByDefault,
  type NotificationView,
  type NotificationWebhookView,
  type NotifyInput,
  type NotifyOptions,
  type PreferenceView,
} from './types.js';

export type NotificationRow = Selectable<NotificationsTable>;
type Row = NotificationRow;

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

export function notificationView(r: Row): NotificationView {
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

/** Binds a webhook's signing secret to its owner and URL: a ciphertext copied elsewhere fails to open. */
const webhookAad = (userId: string, url: string) => Buffer.from(`notification_webhook\0${userId}\0${url}`);

/** Notification webhook signing secrets, for `secrets rotate-key`: re-sealed in the rotation's transaction. */
export const notificationWebhookSecretsColumn: SealedColumn = {
  name: 'notification_webhooks.secret_ciphertext',
  async reencrypt(trx, rekey) {
    const rows = await trx
      .selectFrom('notification_webhooks')
      .select(['id', 'user_id', 'url', 'secret_ciphertext'])
      .where('secret_ciphertext', 'is not', null)
      .forUpdate()
      .execute();
    for (const row of rows) {
      await trx
        .updateTable('notification_webhooks')
        .set({ secret_ciphertext: rekey(row.secret_ciphertext!, webhookAad(row.user_id, row.url)) })
        .where('id', '=', row.id)
        .execute();
    }
    return rows.length;
  },
};

/**
 * Notifications: the outbox writer (`notify`, called in the caller's transaction), the user's inbox
 * (list, read, unread count), preferences and user-level webhooks. Delivery is the worker's job.
 */
export class NotifyService {
  private outboundClient: OutboundClient;
  /** Called after rows were written, so the worker looks soon (it also polls). */
  onEnqueued: () => void = () => {};

  constructor(
    private readonly db: Db,
    private readonly masterKey: Buffer,
    /** Shared with the worker; `configure` changes it in place. */
    readonly options: NotifyOptions,
    private readonly emailEnabled: boolean,
    private readonly log: Logger,
  ) {
    this.outboundClient = this.buildOutbound();
  }

  private buildOutbound(): OutboundClient {
    return new OutboundClient({
      allow: this.options.outboundAllow,
      timeoutMs: this.options.outboundTimeoutMs,
    });
  }

  /** The SSRF-guarded client the webhook channel uses (rebuilt when the allow-list changes). */
  get outbound(): OutboundClient {
    return this.outboundClient;
  }

  /** Adjusts delivery tuning at run time (tests shrink delays; on-premises allow-lists). */
  configure(changes: Partial<NotifyOptions>): void {
    Object.assign(this.options, changes);
    if (changes.outboundAllow || changes.outboundTimeoutMs) this.outboundClient = this.buildOutbound();
  }

  /**
   * Writes the notifications of one event into the outbox, in the caller's transaction: one row per
   * recipient and channel the recipient's preferences enable. E-mail beyond the hourly limit is
   * folded into one pending digest per user. Returns the number of rows written or bumped.
   */
  async notify(db: DbOrTx, input: NotifyInput): Promise<number> {
    const userIds = [...new Set(input.userIds.filter((id): id is string => typeof id === 'string'))];
    if (userIds.length === 0) return 0;
    const type = input.type;
    if (!type) throw new Error('notification type is required');
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
    const base = {
      project_id: input.projectId ?? null,
      type,
      subject: input.subject,
      body: input.body ?? '',
      ref_type: input.refType ?? null,
      ref_id: input.refId ?? null,
    };
    const rows: (typeof base & {
      user_id: string;
      channel: NotificationChannel;
      recipient: string | null;
    })[] = [];
    const emailTo: { userId: string; email: string }[] = [];
    for (const user of users) {
      const own = prefs.filter((p) => p.user_id === user.id);
      const chosen =
        own.find((p) => p.event_type === type)?.channels ??
        own.find((p) => p.event_type === '*')?.channels ??
        (['in_app', ...(emailedByDefault(type) ? ['email'] : []), 'webhook'] as NotificationChannel[]);
      const channels = new Set(chosen);
      if (channels.has('in_app'))
        rows.push({ ...base, user_id: user.id, channel: 'in_app', recipient: null });
      if (channels.has('webhook')) {
        for (const hook of hooks.filter((h) => h.user_id === user.id)) {
          rows.push({ ...base, user_id: user.id, channel: 'webhook', recipient: hook.url });
        }
      }
      const email = validAddress(user.email);
      if (channels.has('email') && this.emailEnabled && email) emailTo.push({ userId: user.id, email });
    }
    if (rows.length > 0) {
      await db
        .insertInto('notifications')
        .values(rows.map((r) => ({ ...r, next_attempt_at: sql<Date>`now()` })))
        .execute();
    }
    for (const e of emailTo) await this.enqueueEmail(db, e.userId, e.email, base);
    this.onEnqueued();
    return rows.length + emailTo.length;
  }

  /**
   * One e-mail row, or — past the user's hourly limit — a fold into the user's pending digest (the
   * partial unique index on (user, channel, group_key) keeps one). A per-user advisory lock makes the
   * count-then-insert exact under concurrent transactions.
   */
  private async enqueueEmail(
    db: DbOrTx,
    userId: string,
    email: string,
    n: {
      project_id: string | null;
      type: string;
      subject: string;
      body: string;
      ref_type: string | null;
      ref_id: string | null;
    },
  ): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtext(${`notify.email:${userId}`}))`.execute(db);
    const counted = await db
      .selectFrom('notifications')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('channel', '=', 'email')
      .where('status', 'in', ['pending', 'sent'])
      .where('created_at', '>', sql<Date>`now() - interval '1 hour'`)
      .executeTakeFirstOrThrow();
    if (Number(counted.n) < this.options.emailHourlyLimit) {
      await db
        .insertInto('notifications')
        .values({
          ...n,
          user_id: userId,
          channel: 'email',
          recipient: email,
          next_attempt_at: sql<Date>`now()`,
        })
        .execute();
      return;
    }
    const line = `- ${n.subject.replace(/[\r\n]+/g, ' ')}`;
    const delaySeconds = this.options.digestDelayMs / 1000;
    await sql`
      insert into notifications (user_id, channel, type, subject, body, recipient, group_key, group_count, next_attempt_at)
      values (${userId}, 'email', 'digest', 'Notification digest', ${line}, ${email}, 'digest', 1,
              now() + make_interval(secs => ${delaySeconds}))
      on conflict (user_id, channel, group_key) where status = 'pending' and group_key is not null
      do update set group_count = notifications.group_count + 1,
        body = case when notifications.group_count < ${this.options.digestMaxLines}
                    then notifications.body || E'\n' || excluded.body else notifications.body end`.execute(
      db,
    );
  }

  /**
   * `onlyProject`: the caller's token is restricted to that project, so it sees only notifications
   * about it (02-identity: a token is an upper bound on self-service routes too).
   */
  async list(
    userId: string,
    f: ListFilter,
    onlyProject: string | null = null,
  ): Promise<Page<NotificationView>> {
    let q = this.db.selectFrom('notifications').selectAll().where('user_id', '=', userId);
    if (onlyProject) q = q.where('project_id', '=', onlyProject);
    if (f.channel !== 'all') q = q.where('channel', '=', f.channel);
    if (f.status) q = q.where('status', '=', f.status);
    if (f.type) q = q.where('type', '=', f.type);
    return pageByTime(q, { time: 'created_at', id: 'id' }, f, notificationView);
  }

  async unreadCount(userId: string, onlyProject: string | null = null): Promise<number> {
    const r = await this.db
      .selectFrom('notifications')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .$if(onlyProject !== null, (q) => q.where('project_id', '=', onlyProject!))
      .where('channel', '=', 'in_app')
      .where('status', 'in', ['pending', 'sent'])
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Marks one in-app notification of the caller read (pending/sent → read; anything else is 409). */
  async markRead(
    actor: Actor,
    userId: string,
    id: string,
    onlyProject: string | null = null,
  ): Promise<NotificationView> {
    return transaction(this.db, async (trx) => {
      const row = (await trx
        .selectFrom('notifications')
        .selectAll()
        .where('id', '=', id)
        .where('user_id', '=', userId)
        .$if(onlyProject !== null, (q) => q.where('project_id', '=', onlyProject!))
        .forUpdate()
        .executeTakeFirst()) as Row | undefined;
      if (!row) throw notFound('notification');
      if (row.channel !== 'in_app') {
        throw conflict('only in-app notifications can be marked read', [
          { message: `channel is ${row.channel}`, channel: row.channel },
        ]);
      }
      if (!notificationStatusTransitions[row.status].includes('read')) {
        throw conflict(`notification is ${row.status}`, [
          { message: `status is ${row.status}`, status: row.status },
        ]);
      }
      const updated = (await trx
        .updateTable('notifications')
        .set({ status: 'read', read_at: sql<Date>`now()` })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow()) as Row;
      await writeAudit(trx, {
        actor,
        action: 'notification.read',
        resourceType: 'notification',
        resourceId: id,
        projectId: row.project_id,
      });
      return notificationView(updated);
    });
  }

  async markAllRead(actor: Actor, userId: string, onlyProject: string | null = null): Promise<number> {
    return transaction(this.db, async (trx) => {
      const r = await trx
        .updateTable('notifications')
        .set({ status: 'read', read_at: sql<Date>`now()` })
        .where('user_id', '=', userId)
        .$if(onlyProject !== null, (q) => q.where('project_id', '=', onlyProject!))
        .where('channel', '=', 'in_app')
        .where('status', 'in', ['pending', 'sent'])
        .executeTakeFirst();
      const updated = Number(r.numUpdatedRows);
      await writeAudit(trx, {
        actor,
        action: 'notification.read_all',
        resourceType: 'notification',
        detail: { updated },
      });
      return updated;
    });
  }

  async preferences(userId: string): Promise<PreferenceView[]> {
    const rows = await this.db
      .selectFrom('notification_preferences')
      .select(['event_type', 'channels'])
      .where('user_id', '=', userId)
      .orderBy('event_type')
      .execute();
    return rows.map((r) => ({ event_type: r.event_type, channels: [...r.channels] }));
  }

  /** Replaces the caller's preferences with the given set (types not listed fall back to the defaults). */
  async setPreferences(actor: Actor, userId: string, items: PreferenceView[]): Promise<PreferenceView[]> {
    const seen = new Set<string>();
    for (const item of items) {
      if (seen.has(item.event_type)) throw badRequest(`event type ${item.event_type} listed twice`);
      seen.add(item.event_type);
    }
    await transaction(this.db, async (trx) => {
      await trx.deleteFrom('notification_preferences').where('user_id', '=', userId).execute();
      if (items.length > 0) {
        await trx
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
      await writeAudit(trx, {
        actor,
        action: 'notification_preferences.update',
        resourceType: 'user',
        resourceId: userId,
        detail: { items },
      });
    });
    return this.preferences(userId);
  }

  async webhooks(userId: string): Promise<NotificationWebhookView[]> {
    const rows = await this.db
      .selectFrom('notification_webhooks')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      url: r.url,
      is_active: r.is_active,
      has_secret: r.secret_ciphertext !== null,
      created_at: iso(r.created_at)!,
    }));
  }

  /** Adds a user-level webhook; the URL must pass the SSRF guard now (and is checked again per delivery). */
  async createWebhook(
    actor: Actor,
    userId: string,
    input: { url: string; secret?: string | undefined },
  ): Promise<NotificationWebhookView> {
    try {
      await this.outbound.check(input.url);
    } catch (err) {
      if (err instanceof OutboundError) {
        throw badRequest('webhook URL refused', [{ path: 'body.url', message: err.message }]);
      }
      throw err;
    }
    const key = secretsKey(this.masterKey);
    const row = await transaction(this.db, async (trx) => {
      const count = await trx
        .selectFrom('notification_webhooks')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('user_id', '=', userId)
        .executeTakeFirstOrThrow();
      if (Number(count.n) >= this.options.maxWebhooksPerUser) {
        throw conflict(`at most ${this.options.maxWebhooksPerUser} notification webhooks per user`);
      }
      const created = await trx
        .insertInto('notification_webhooks')
        .values({
          user_id: userId,
          url: input.url,
          secret_ciphertext: input.secret ? seal(key, input.secret, webhookAad(userId, input.url)) : null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'notification_webhook.create',
        resourceType: 'notification_webhook',
        resourceId: created.id,
        // Webhook URLs often carry a token in the path (chat integrations): only the host is audited.
        detail: { host: new URL(input.url).host },
      });
      return created;
    });
    return {
      id: row.id,
      url: row.url,
      is_active: row.is_active,
      has_secret: row.secret_ciphertext !== null,
      created_at: iso(row.created_at)!,
    };
  }

  async deleteWebhook(actor: Actor, userId: string, id: string): Promise<void> {
    await transaction(this.db, async (trx) => {
      const r = await trx
        .deleteFrom('notification_webhooks')
        .where('id', '=', id)
        .where('user_id', '=', userId)
        .returning('url')
        .executeTakeFirst();
      if (!r) throw notFound('notification webhook');
      await writeAudit(trx, {
        actor,
        action: 'notification_webhook.delete',
        resourceType: 'notification_webhook',
        resourceId: id,
        detail: { host: new URL(r.url).host },
      });
    });
  }

  /** The signing secret of a user's active webhook at this URL; undefined when there is none. */
  async webhookSecret(userId: string, url: string): Promise<{ found: boolean; secret: Buffer | null }> {
    const row = await this.db
      .selectFrom('notification_webhooks')
      .select('secret_ciphertext')
      .where('user_id', '=', userId)
      .where('url', '=', url)
      .where('is_active', '=', true)
      .executeTakeFirst();
    if (!row) return { found: false, secret: null };
    if (!row.secret_ciphertext) return { found: true, secret: null };
    try {
      return {
        found: true,
        secret: openSealed(secretsKey(this.masterKey), row.secret_ciphertext, webhookAad(userId, url)),
      };
    } catch (err) {
      this.log.error({ err, user_id: userId }, 'notification webhook secret cannot be decrypted');
      throw err;
    }
  }
}
