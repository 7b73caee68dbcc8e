import { type Selectable, sql } from 'kysely';
import { type Page, pageByTime } from '../core/pagination.js';
import type { SealedColumn } from '../secrets/index.js';
import type { Db, DbOrTx } from '../store/db.js';
import {
  type WebhookDeliveriesTable,
  type WebhookDeliveryStatus,
  type WebhookEvent,
  type WebhooksTable,
  webhookEvents,
} from '../store/schema.js';
import type { DeliveryView, WebhookView } from './schemas.js';

export type WebhookRow = Selectable<WebhooksTable>;
export type DeliveryRow = Selectable<WebhookDeliveriesTable>;

export interface ProjectRef {
  id: string;
  name: string;
  full_name: string;
}

const iso = (d: Date | string): string => new Date(d).toISOString();

/** Canonical order, no duplicates: the stored list reads the same whatever order the client sent. */
export const normalizeEvents = (events: readonly WebhookEvent[]): WebhookEvent[] =>
  webhookEvents.filter((e) => events.includes(e));

export function webhookView(r: WebhookRow): WebhookView {
  return {
    id: r.id,
    project_id: r.project_id,
    url: r.url,
    events: normalizeEvents(r.events),
    active: r.is_active,
    has_secret: r.secret_ciphertext !== null,
    created_by: r.created_by,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}

export function deliveryView(r: DeliveryRow): DeliveryView {
  return {
    id: r.id,
    webhook_id: r.webhook_id,
    delivery_id: r.delivery_id,
    event: r.event,
    attempt: r.attempt,
    status: r.status,
    status_code: r.status_code,
    duration_ms: r.duration_ms,
    error: r.error,
    created_at: iso(r.created_at),
    finished_at: r.finished_at === null ? null : iso(r.finished_at),
  };
}

/**
 * The exact request body of a delivery. The payload column holds the body text as a JSON string
 * (jsonb would reorder keys and refuses NUL escapes in objects; a string scalar keeps every byte),
 * so every attempt sends the same bytes and the signature of a retry matches the first one.
 */
export function deliveryBody(row: Pick<DeliveryRow, 'payload'>): string | null {
  return typeof row.payload === 'string' ? row.payload : null;
}

/**
 * Binds a project webhook's signing secret to its row: a ciphertext copied to another webhook (or to
 * a user-level notification webhook, which uses its own prefix) fails to open.
 */
export const webhookAad = (projectId: string, webhookId: string) =>
  Buffer.from(`project_webhook\0${projectId}\0${webhookId}`);

/** Project webhook signing secrets, for `secrets rotate-key`: re-sealed in the rotation's transaction. */
export const webhookSecretsColumn: SealedColumn = {
  name: 'webhooks.secret_ciphertext',
  async reencrypt(trx, rekey) {
    const rows = await trx
      .selectFrom('webhooks')
      .select(['id', 'project_id', 'secret_ciphertext'])
      .where('secret_ciphertext', 'is not', null)
      .forUpdate()
      .execute();
    for (const row of rows) {
      await trx
        .updateTable('webhooks')
        .set({ secret_ciphertext: rekey(row.secret_ciphertext!, webhookAad(row.project_id, row.id)) })
        .where('id', '=', row.id)
        .execute();
    }
    return rows.length;
  },
};

export async function webhookRow(
  db: DbOrTx,
  projectId: string,
  hookId: string,
  lock = false,
): Promise<WebhookRow | undefined> {
  let q = db.selectFrom('webhooks').selectAll().where('id', '=', hookId).where('project_id', '=', projectId);
  if (lock) q = q.forUpdate();
  return q.executeTakeFirst();
}

export function listWebhooks(
  db: Db,
  projectId: string,
  page: { limit: number; cursor?: string | undefined },
): Promise<Page<WebhookView>> {
  const q = db.selectFrom('webhooks').selectAll().where('project_id', '=', projectId);
  return pageByTime(q, { time: 'created_at', id: 'id' }, page, webhookView);
}

export interface DeliveryFilter {
  limit: number;
  cursor?: string | undefined;
  status?: WebhookDeliveryStatus | undefined;
  delivery_id?: string | undefined;
}

export function listDeliveries(db: Db, hookId: string, f: DeliveryFilter): Promise<Page<DeliveryView>> {
  let q = db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', hookId);
  if (f.status) q = q.where('status', '=', f.status);
  if (f.delivery_id) q = q.where('delivery_id', '=', f.delivery_id);
  return pageByTime(q, { time: 'created_at', id: 'id' }, f, deliveryView);
}

/** The ids of the project's active webhooks subscribed to the category. */
export async function subscribedWebhooks(
  db: DbOrTx,
  projectId: string,
  category: WebhookEvent,
): Promise<string[]> {
  const rows = await db
    .selectFrom('webhooks')
    .select('id')
    .where('project_id', '=', projectId)
    .where('is_active', '=', true)
    .where(sql<boolean>`${category} = any(events)`)
    .execute();
  return rows.map((r) => r.id);
}

export async function projectRef(db: DbOrTx, projectId: string): Promise<ProjectRef | undefined> {
  const row = await db
    .selectFrom('projects as p')
    .innerJoin('users as u', 'u.id', 'p.owner_id')
    .select(['p.id', 'p.name', 'u.name as owner_name'])
    .where('p.id', '=', projectId)
    .executeTakeFirst();
  return row && { id: row.id, name: row.name, full_name: `${row.owner_name}/${row.name}` };
}

/**
 * The body of one delivery, fixed when it is queued: `sent_at` is the time of the first attempt, so
 * retries are byte-identical (receivers can deduplicate on X-Platform-Delivery).
 */
export function buildBody(event: string, deliveryId: string, project: ProjectRef, data: unknown): string {
  return JSON.stringify({
    event,
    delivery: deliveryId,
    project: { id: project.id, name: project.name, full_name: project.full_name },
    data: data ?? null,
    sent_at: new Date().toISOString(),
  });
}

/** New deliveries: attempt 1 of each, pending and due now. */
export async function insertDeliveries(
  db: DbOrTx,
  rows: { webhookId: string; deliveryId: string; event: string; body: string }[],
): Promise<DeliveryRow[]> {
  return db
    .insertInto('webhook_deliveries')
    .values(
      rows.map((r) => ({
        webhook_id: r.webhookId,
        delivery_id: r.deliveryId,
        event: r.event,
        // A JSON string literal: jsonb keeps the body text exactly (see deliveryBody).
        payload: JSON.stringify(r.body),
        attempt: 1,
        status: 'pending' as const,
        next_attempt_at: sql<Date>`now()`,
      })),
    )
    .returningAll()
    .execute();
}

/** The next attempt of a delivery (same delivery_id and body), due after `delayMs`; once per attempt number. */
export async function insertNextAttempt(db: DbOrTx, attemptRowId: string, delayMs: number): Promise<void> {
  await db
    .insertInto('webhook_deliveries')
    .columns(['webhook_id', 'delivery_id', 'event', 'payload', 'attempt', 'next_attempt_at'])
    .expression((eb) =>
      eb
        .selectFrom('webhook_deliveries')
        .select([
          'webhook_id',
          'delivery_id',
          'event',
          'payload',
          sql<number>`attempt + 1`.as('attempt'),
          sql<Date>`now() + make_interval(secs => ${delayMs / 1000})`.as('next_attempt_at'),
        ])
        .where('id', '=', attemptRowId),
    )
    .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doNothing())
    .execute();
}

/**
 * Claims up to `limit` due attempts: FOR UPDATE SKIP LOCKED so instances never send the same attempt
 * at once, leased by moving `next_attempt_at` past the lease (a crash mid-send only delays the row).
 */
export async function claimDueDeliveries(
  db: Db,
  limit: number,
  leaseSeconds: number,
): Promise<DeliveryRow[]> {
  const result = await sql<DeliveryRow>`
    update webhook_deliveries d
    set next_attempt_at = now() + make_interval(secs => ${leaseSeconds})
    from (
      select id from webhook_deliveries
      where status = 'pending' and next_attempt_at <= now()
      order by next_attempt_at, created_at
      limit ${limit}
      for update skip locked
    ) due
    where d.id = due.id
    returning d.*`.execute(db);
  return result.rows;
}
