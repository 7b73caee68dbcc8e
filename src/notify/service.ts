import { sql } from 'kysely';
import type { Logger } from 'pino';
import { writeAudit } from '../core/audit.js';
import { badRequest, conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { OutboundClient } from '../core/outbound.js';
import type { Page } from '../core/pagination.js';
import { type Db, type DbOrTx, transaction } from '../store/db.js';
import type { NotificationChannel } from '../store/schema.js';
import { validAddress } from './email.js';
import {
  emailsLastHour,
  foldIntoDigest,
  insertNotifications,
  type ListFilter,
  listNotifications,
  lockNotification,
  type NotificationContent,
  notificationView,
  preferencesOf,
  recipientsOf,
  replacePreferences,
  unreadCount,
} from './queries.js';
import { NOTIFY_REASONS } from './reasons.js';
import type { NotificationView, NotificationWebhookView, PreferenceView } from './schemas.js';
import { markNotificationsRead, READABLE } from './transitions.js';
import { emailedByDefault, type NotifyInput, type NotifyOptions } from './types.js';
import { UserWebhooks } from './user-webhooks.js';

/**
 * Notifications: the outbox writer (`notify`, called in the caller's transaction), the user's inbox
 * (list, read, unread count), preferences and user-level webhooks. Delivery is the worker's job.
 */
export class NotifyService {
  private outboundClient: OutboundClient;
  private readonly hooks: UserWebhooks;
  /** Called after rows were written, so the worker looks soon (it also polls). */
  onEnqueued: () => void = () => {};

  constructor(
    private readonly db: Db,
    masterKey: Buffer,
    /** Shared with the worker; `configure` changes it in place. */
    readonly options: NotifyOptions,
    private readonly emailEnabled: boolean,
    log: Logger,
  ) {
    this.outboundClient = this.buildOutbound();
    this.hooks = new UserWebhooks(db, masterKey, options, () => this.outboundClient, log);
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
    const { users, prefs, hooks } = await recipientsOf(db, userIds, type);
    const base: NotificationContent = {
      project_id: input.projectId ?? null,
      type,
      subject: input.subject,
      body: input.body ?? '',
      ref_type: input.refType ?? null,
      ref_id: input.refId ?? null,
    };
    const rows: Parameters<typeof insertNotifications>[1] = [];
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
    await insertNotifications(db, rows);
    for (const e of emailTo) await this.enqueueEmail(db, e.userId, e.email, base);
    this.onEnqueued();
    return rows.length + emailTo.length;
  }

  /**
   * One e-mail row, or — past the user's hourly limit — a fold into the user's pending digest. A
   * per-user advisory lock makes the count-then-insert exact under concurrent transactions.
   */
  private async enqueueEmail(
    db: DbOrTx,
    userId: string,
    email: string,
    n: NotificationContent,
  ): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtext(${`notify.email:${userId}`}))`.execute(db);
    if ((await emailsLastHour(db, userId)) < this.options.emailHourlyLimit) {
      await insertNotifications(db, [{ ...n, user_id: userId, channel: 'email', recipient: email }]);
      return;
    }
    await foldIntoDigest(db, {
      userId,
      email,
      line: `- ${n.subject.replace(/[\r\n]+/g, ' ')}`,
      delaySeconds: this.options.digestDelayMs / 1000,
      maxLines: this.options.digestMaxLines,
    });
  }

  /**
   * `onlyProject`: the caller's token is restricted to that project, so it sees only notifications
   * about it (02-identity: a token is an upper bound on self-service routes too).
   */
  list(userId: string, f: ListFilter, onlyProject: string | null = null): Promise<Page<NotificationView>> {
    return listNotifications(this.db, userId, f, onlyProject);
  }

  unreadCount(userId: string, onlyProject: string | null = null): Promise<number> {
    return unreadCount(this.db, userId, onlyProject);
  }

  /** Marks one in-app notification of the caller read (pending/sent → read; anything else is 409). */
  async markRead(
    actor: Actor,
    userId: string,
    id: string,
    onlyProject: string | null = null,
  ): Promise<NotificationView> {
    return transaction(this.db, async (trx) => {
      const row = await lockNotification(trx, userId, id, onlyProject);
      if (!row) throw notFound('notification');
      if (row.channel !== 'in_app') {
        throw conflict('only in-app notifications can be marked read', [
          { message: `channel is ${row.channel}`, channel: row.channel },
        ]).because(NOTIFY_REASONS.notInApp);
      }
      const refused = () =>
        conflict(`notification is ${row.status}`, [
          { message: `status is ${row.status}`, status: row.status },
        ]).because(NOTIFY_REASONS.notReadable);
      if (!READABLE.includes(row.status)) throw refused();
      const [updated] = await markNotificationsRead(trx, { userId, id, projectId: onlyProject });
      if (!updated) throw refused();
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
      const updated = (await markNotificationsRead(trx, { userId, projectId: onlyProject })).length;
      await writeAudit(trx, {
        actor,
        action: 'notification.read_all',
        resourceType: 'notification',
        detail: { updated },
      });
      return updated;
    });
  }

  preferences(userId: string): Promise<PreferenceView[]> {
    return preferencesOf(this.db, userId);
  }

  /** Replaces the caller's preferences with the given set (types not listed fall back to the defaults). */
  async setPreferences(actor: Actor, userId: string, items: PreferenceView[]): Promise<PreferenceView[]> {
    const seen = new Set<string>();
    for (const item of items) {
      if (seen.has(item.event_type)) {
        throw badRequest(`event type ${item.event_type} listed twice`).because(
          NOTIFY_REASONS.duplicatePreference,
        );
      }
      seen.add(item.event_type);
    }
    await transaction(this.db, async (trx) => {
      await replacePreferences(trx, userId, items);
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

  webhooks(userId: string): Promise<NotificationWebhookView[]> {
    return this.hooks.list(userId);
  }

  createWebhook(
    actor: Actor,
    userId: string,
    input: { url: string; secret?: string | undefined },
  ): Promise<NotificationWebhookView> {
    return this.hooks.create(actor, userId, input);
  }

  deleteWebhook(actor: Actor, userId: string, id: string): Promise<void> {
    return this.hooks.remove(actor, userId, id);
  }

  /** The signing secret of a user's active webhook at this URL; `found: false` when there is none. */
  webhookSecret(userId: string, url: string): Promise<{ found: boolean; secret: Buffer | null }> {
    return this.hooks.secret(userId, url);
  }
}
