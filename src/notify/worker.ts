import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { backoffDelayMs } from '../core/backoff.js';
import { CoalescedPass } from '../core/loop.js';
import { OutboundError, signPayload } from '../core/outbound.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/index.js';
import { DeliveryError, type Mailer } from './email.js';
import { claimDue, type NotificationRow, notificationView, retryLater } from './queries.js';
import type { NotifyService } from './service.js';
import { markNotificationFailed, markNotificationSent } from './transitions.js';
import { type NotifyOptions, userChannel } from './types.js';

/**
 * Delivers the outbox. Every instance runs it: rows are claimed with FOR UPDATE SKIP LOCKED and
 * leased by moving `next_attempt_at` past the lease, so two instances never take the same row and a
 * crash mid-send only delays the row until the lease runs out (then it is retried). `attempts` is
 * counted at claim time, so a row that crashes the process repeatedly still reaches the limit.
 */
export class NotificationWorker {
  private readonly loop: CoalescedPass;
  private readonly instance = randomUUID();

  constructor(
    private readonly db: Db,
    private readonly pubsub: PubSub,
    private readonly service: NotifyService,
    private readonly mailer: Mailer | null,
    private readonly options: NotifyOptions,
    private readonly log: Logger,
  ) {
    this.loop = new CoalescedPass(
      (signal) => this.pass(signal),
      (err) => this.log.error({ err }, 'notification delivery pass failed'),
    );
  }

  /** The scheduler loop body. */
  run(signal: AbortSignal): Promise<void> {
    return this.loop.run(signal);
  }

  /** Asks for a delivery pass soon (after a commit); coalesces with a pass in progress. */
  kick(): void {
    this.loop.kick();
  }

  /** Waits for the pass in progress; no new pass starts afterwards. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Claims and delivers batches until the outbox has nothing due. */
  private async pass(signal?: AbortSignal): Promise<void> {
    while (!this.loop.stopped && !signal?.aborted) {
      const claimed = await this.claim();
      if (claimed.length === 0) break;
      await this.deliverAll(claimed);
      if (claimed.length < this.options.batchSize) break;
    }
  }

  private claim(): Promise<NotificationRow[]> {
    return claimDue(this.db, this.options.batchSize, this.options.leaseMs / 1000);
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
        await markNotificationSent(this.db, row.id);
      }
    } catch (err) {
      await this.recordFailure(row, err).catch((e: unknown) =>
        this.log.error({ err: e, notification_id: row.id }, 'recording a notification failure failed'),
      );
    }
  }

  private async deliverInApp(row: NotificationRow): Promise<void> {
    // Read before the push was recorded: nothing to push.
    const sent = await markNotificationSent(this.db, row.id);
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
      await retryLater(this.db, row.id, message, delay);
    } else {
      await markNotificationFailed(this.db, row.id, message);
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
