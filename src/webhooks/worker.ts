import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { backoffDelayMs } from '../core/backoff.js';
import { CoalescedPass } from '../core/loop.js';
import { OutboundError, signPayload } from '../core/outbound.js';
import { type Db, transaction } from '../store/db.js';
import type { WebhookDeliveryStatus } from '../store/schema.js';
import { claimDueDeliveries, type DeliveryRow, deliveryBody, insertNextAttempt } from './queries.js';
import type { WebhooksService } from './service.js';
import { finishDeliveryAttempt } from './transitions.js';

/** The outcome of one attempt, as recorded on its row. */
interface AttemptOutcome {
  status: Extract<WebhookDeliveryStatus, 'success' | 'failure'>;
  statusCode: number | null;
  error: string | null;
  /** Worth another attempt: 5xx, 429, a timeout or a network error. */
  retryable: boolean;
}

const failure = (error: string, retryable: boolean, statusCode: number | null = null): AttemptOutcome => ({
  status: 'failure',
  statusCode,
  error: error.slice(0, 2000),
  retryable,
});

/**
 * Sends the delivery outbox. Every instance runs it: due rows are claimed with FOR UPDATE SKIP
 * LOCKED and leased by moving `next_attempt_at` past the lease, so two instances never send the same
 * attempt at once and a crash mid-send only delays the row until the lease runs out. Rows are
 * claimed only for free slots, so a slow receiver holds one slot, not a whole batch, and no claimed
 * row waits in memory while its lease runs.
 */
export class DeliveryWorker {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly loop: CoalescedPass;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly db: Db,
    private readonly service: WebhooksService,
    private readonly log: Logger,
    private readonly outcomes?: Counter<'outcome'>,
  ) {
    this.loop = new CoalescedPass(
      (signal) => this.pass(signal),
      (err) => this.log.error({ err }, 'webhook delivery pass failed'),
    );
  }

  private get options() {
    return this.service.options;
  }

  /** The scheduler loop body: fills the free slots and returns (deliveries go on in the background). */
  run(signal: AbortSignal): Promise<void> {
    return this.loop.run(signal);
  }

  /** Asks for a pass soon (after a commit, a finished delivery, a retry falling due). */
  kick(): void {
    this.loop.kick();
  }

  /** No new attempts start; waits for the ones in flight (each ends within the request timeout). */
  async stop(): Promise<void> {
    const stopping = this.loop.stop();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await stopping;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Claims rows for the free slots and starts them; a finishing delivery kicks again. */
  private async pass(signal?: AbortSignal): Promise<void> {
    while (!this.loop.stopped && !signal?.aborted) {
      const free = Math.max(1, this.options.concurrency) - this.inFlight.size;
      if (free <= 0) break;
      const rows = await this.claim(free);
      for (const row of rows) this.start(row);
      if (rows.length < free) break;
    }
  }

  private claim(limit: number): Promise<DeliveryRow[]> {
    const leaseMs = Math.max(this.options.leaseMs, this.options.timeoutMs + 30_000);
    return claimDueDeliveries(this.db, limit, leaseMs / 1000);
  }

  private start(row: DeliveryRow): void {
    const run = this.deliver(row)
      .catch((err: unknown) =>
        this.log.error(
          { err, delivery_id: row.delivery_id, attempt: row.attempt },
          'webhook delivery failed',
        ),
      )
      .finally(() => {
        this.inFlight.delete(run);
        this.kick();
      });
    this.inFlight.add(run);
  }

  private async deliver(row: DeliveryRow): Promise<void> {
    const started = performance.now();
    const outcome = await this.attempt(row);
    const durationMs = Math.round(performance.now() - started);
    await this.record(row, outcome, durationMs);
  }

  private async attempt(row: DeliveryRow): Promise<AttemptOutcome> {
    let target: Awaited<ReturnType<WebhooksService['target']>>;
    try {
      target = await this.service.target(row.webhook_id);
    } catch (err) {
      this.log.error({ err, webhook_id: row.webhook_id }, 'webhook secret cannot be decrypted');
      return failure('the signing secret cannot be decrypted', false);
    }
    // A deleted webhook takes its rows with it (ON DELETE CASCADE): recording finds nothing.
    if (!target) return failure('the webhook was deleted', false);
    if (!target.active && row.event !== 'ping') return failure('the webhook is inactive', false);
    const body = deliveryBody(row);
    if (body === null) return failure('the stored body is unreadable', false);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'Platform-Webhooks',
      'x-platform-event': row.event,
      'x-platform-delivery': row.delivery_id,
    };
    if (target.secret) headers['x-platform-signature'] = signPayload(target.secret, body);
    try {
      const res = await this.service.outbound.request(target.url, { method: 'POST', headers, body });
      if (res.status >= 200 && res.status < 300) {
        return { status: 'success', statusCode: res.status, error: null, retryable: false };
      }
      const retryable = res.status >= 500 || res.status === 429;
      const note = res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : '';
      return failure(`receiver answered HTTP ${res.status}${note}`, retryable, res.status);
    } catch (err) {
      if (err instanceof OutboundError) return failure(`${err.kind}: ${err.message}`, err.transient);
      throw err;
    }
  }

  /**
   * Closes the attempt's row and, for a retryable failure below the limit, inserts the next attempt
   * (same delivery_id and body) in the same transaction. The status guard makes a second recording
   * of the same attempt (another instance after a lease expiry) a no-op.
   */
  private async record(row: DeliveryRow, outcome: AttemptOutcome, durationMs: number): Promise<void> {
    const retry = outcome.retryable && row.attempt < this.options.maxAttempts;
    const delayMs = retry
      ? backoffDelayMs(row.attempt, this.options.backoffBaseMs, this.options.backoffMaxMs)
      : 0;
    const closed = await transaction(this.db, async (trx) => {
      const finished = await finishDeliveryAttempt(trx, row.id, {
        status: outcome.status,
        statusCode: outcome.statusCode,
        durationMs,
        error: outcome.error,
      });
      if (finished && retry) await insertNextAttempt(trx, row.id, delayMs);
      return finished;
    });
    if (!closed) return;
    const label = outcome.status === 'success' ? 'success' : retry ? 'retry' : 'failure';
    this.outcomes?.inc({ outcome: label });
    if (outcome.status === 'failure') {
      this.log.warn(
        {
          webhook_id: row.webhook_id,
          delivery_id: row.delivery_id,
          attempt: row.attempt,
          status_code: outcome.statusCode,
          error: outcome.error,
          retry,
        },
        'webhook delivery attempt failed',
      );
    }
    // A short backoff would otherwise wait for the next poll.
    if (retry && delayMs < this.options.pollIntervalMs && !this.loop.stopped) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.kick();
      }, delayMs + 5);
      timer.unref();
      this.timers.add(timer);
    }
  }
}
