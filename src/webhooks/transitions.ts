import { sql } from 'kysely';
import type { DbOrTx } from '../store/db.js';
import {
  transitionSources,
  type WebhookDeliveryStatus,
  webhookDeliveryStatusTransitions,
} from '../store/schema.js';

/**
 * The only writer of `webhook_deliveries.status` (each row is one attempt; a retry is a new pending
 * row). The guarded `UPDATE … WHERE status IN (<sources>) RETURNING` makes a second recording of
 * the same attempt (another instance after a lease expiry) a no-op. The sources are checked against
 * the schema's transition table when this file loads.
 */
const FINISH_FROM = transitionSources(
  webhookDeliveryStatusTransitions,
  'webhook delivery finished',
  ['pending'],
  ['success', 'failure'],
);

export interface AttemptResult {
  status: Extract<WebhookDeliveryStatus, 'success' | 'failure'>;
  statusCode: number | null;
  durationMs: number;
  error: string | null;
}

/** pending → success/failure with the attempt's result; false when the row was no longer pending. */
export async function finishDeliveryAttempt(db: DbOrTx, id: string, result: AttemptResult): Promise<boolean> {
  const updated = await db
    .updateTable('webhook_deliveries')
    .set({
      status: result.status,
      status_code: result.statusCode,
      duration_ms: result.durationMs,
      error: result.error,
      finished_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', FINISH_FROM)
    .returning('id')
    .executeTakeFirst();
  return updated !== undefined;
}
