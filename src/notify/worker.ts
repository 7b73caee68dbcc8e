import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { backoffDelayMs } from '../core/backoff.js';
import { OutboundError, signPayload } from '../core/outbound.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/index.js';
import { DeliveryError, type Mailer } from './email.js';
import { type NotificationRow, type NotifyService, notificationView } from './service.js';
import { type NotifyOptions, userChannel } from './types.js';

/**
 * Delivers the outbox. Every instance runs it: rows are claimed with FOR UPDATE SKIP LOCKED and
 * leased by moving `next_attempt_at` past the lease, so two instances never take the same row and a
 * crash mid-send only delays the row until the lease runs out (then it is retried). `attempts` is
 * counted at claim time, so a row that crashes the process repeatedly still reaches the limit.
 */
export class NotificationWorker {
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Kicks are ignored until the scheduler ran the loop once: the background was started. */
  private active = false;
  private readonly instance = randomUUID();

  constructor(
    private readonly db: Db,
    private readonly pubsub: PubSub,
    private readonly service: NotifyService,
    private readonly mailer: Mailer | null,
    private readonly options: NotifyOptions,
    private readonly log: Logger,
  ) {}

  /** The scheduler loop body. */
  async run(signal: AbortSignal): Promise<void> {
    this.active = true;
    await this.drain(signal);
  }

  /** Asks for a delivery pass soon (after a commit); coalesces with a pass in progress. */
  kick(): void {
    if (!this.active || this.stopped) return;
    void this.drain().catch((err: unknown) => this.log.error({ err }, 'notification delivery pass failed'));
  }

  /** Waits for the pass in progress; no new pass starts afterwards. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running?.catch(() => {});
  }

  private drain(signal?: AbortSignal): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          while (!this.stopped && !signal?.aborted) {
            const claimed = await this.claim();
            if (claimed.length === 0) break;
            await this.deliverAll(claimed);
            if (claimed.length < this.options.batchSize) break;
          }
        } while (this.again && !this.stopped && !signal?.aborted);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private async claim(): Promise<NotificationRow[]> {
    const leaseSeconds = this.options.leaseMs / 1000;
    // group_key is cleared on claim: events arriving while a digest is being sent start a new one
    // instead of bumping a count the e-mail in flight no longer reflects.
    const result = await sql<NotificationRow>`
      update notifications n
      set attempts = n.attempts + 1,
          next_attempt_at = now() + make_interval(secs => ${leaseSeconds}),
          group_key = null
      from (
        select id from notifications
        where status = 'pending' and next_attempt_at <= now()
        order by next_attempt_at, created_at
        limit ${this.options.batchSize}
        for update skip locked
      ) due
      where n.id = due.id
      returning n.*`.execute(this.db);
    return result.rows;
  }

  private async deliverAll(rows: NotificationRow[]): Promise<void> {
    const queue = [...rows];
    const workers = Array.from({ length: Math.min(this.options.concurrency, queue.length) }, async () => {
      for (let row = queue.shift(); row; row = queue.shift()) await this.deliverOne(row);
    });
    await Promise.all(workers);
  }

  private async deliverOne(row: NotificationRow): Promise<void> {
    try {
      if (row.channel === 'in_app') await this.deliverInApp(row);
      else {
        if (row.channel === 'email') await this.deliverEmail(row);
        else await this.deliverWebhook(row);
        await this.markSent(row);
      }
    } catch (err) {
      await this.recordFailure(row, err).catch((e: unknown) =>
        this.log.error({ err: e, notification_id: row.id }, 'recording a notification failure failed'),
      );
    }
  }

  private async markSent(row: NotificationRow): Promise<NotificationRow | undefined> {
    return (await this.db
      .updateTable('notifications')
      .set({ status: 'sent', sent_at: sql<Date>`now()`, next_attempt_at: null, error: null })
      .where('id', '=', row.id)
      .where('status', '=', 'pending')
      .returningAll()
      .executeTakeFirst()) as NotificationRow | undefined;
  }

  private async deliverInApp(row: NotificationRow): Promise<void> {
    // Read before the push was recorded: nothing to push.
    const sent = await this.markSent(row);
    if (!sent) return;
    await this.pubsub.publish(userChannel(row.user_id), {
      kind: 'notification',
      notification: notificationView(sent),
    });
  }

  private async deliverEmail(row: NotificationRow): Promise<void> {
    if (!this.mailer) throw new DeliveryError('e-mail is not configured (PLATFORM_SMTP_HOST)', false);
    if (!row.recipient) throw new DeliveryError('no recipient address', false);
    const digest = row.type === 'digest';
    const subject = digest
      ? `[Platform] ${row.group_count} more notification${row.group_count === 1 ? '' : 's'}`
      : `[Platform] ${row.subject}`;
    const text = digest
      ? `You reached the hourly e-mail limit; these notifications were folded into one message:\n\n${row.body}${
          row.group_count > this.options.digestMaxLines
            ? `\n… and ${row.group_count - this.options.digestMaxLines} more`
            : ''
        }\n\nAll of them are in your in-app notifications.`
      : `${row.subject}\n\n${row.body}`.trimEnd();
    await this.mailer.send({ id: row.id, to: row.recipient, subject, text });
  }

  private async deliverWebhook(row: NotificationRow): Promise<void> {
    if (!row.recipient) throw new DeliveryError('no webhook URL', false);
    const hook = await this.service.webhookSecret(row.user_id, row.recipient);
    if (!hook.found) throw new DeliveryError('the webhook was removed or disabled', false);
    const view = notificationView(row);
    const body = JSON.stringify({
      id: view.id,
      type: view.type,
      subject: view.subject,
      body: view.body,
      project_id: view.project_id,
      ref_type: view.ref_type,
      ref_id: view.ref_id,
      group_count: view.group_count,
      created_at: view.created_at,
    });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-platform-event': row.type,
      'x-platform-delivery': row.id,
    };
    if (hook.secret) headers['x-platform-signature'] = signPayload(hook.secret, body);
    let status: number;
    try {
      status = (await this.service.outbound.request(row.recipient, { method: 'POST', headers, body })).status;
    } catch (err) {
      if (err instanceof OutboundError) throw new DeliveryError(`webhook: ${err.message}`, err.transient);
      throw err;
    }
    if (status >= 200 && status < 300) return;
    const transient = status >= 500 || status === 429 || status === 408;
    throw new DeliveryError(`webhook: receiver answered HTTP ${status}`, transient);
  }

  private async recordFailure(row: NotificationRow, err: unknown): Promise<void> {
    const transient = err instanceof DeliveryError ? err.transient : true;
    const message = (err instanceof Error ? err.message : String(err)).slice(0, 2000);
    const retry = transient && row.attempts < this.options.maxAttempts;
    if (retry) {
      const delay = backoffDelayMs(row.attempts, this.options.backoffBaseMs, this.options.backoffMaxMs);
      await this.db
        .updateTable('notifications')
        .set({ error: message, next_attempt_at: sql<Date>`now() + make_interval(secs => ${delay / 1000})` })
        .where('id', '=', row.id)
        .where('status', '=', 'pending')
        .execute();
    } else {
      await this.db
        .updateTable('notifications')
        .set({ status: 'failed', error: message, next_attempt_at: null })
        .where('id', '=', row.id)
        .where('status', '=', 'pending')
        .execute();
    }
    this.log.warn(
      {
        notification_id: row.id,
        channel: row.channel,
        attempts: row.attempts,
        retry,
        error: message,
        worker: this.instance,
      },
      'notification delivery failed',
    );
  }
}
