import { randomUUID } from 'node:crypto';
import { type Selectable, sql } from 'kysely';
import type { Logger } from 'pino';
import { writeAudit } from '../core/audit.js';
import { conflict, notFound, unprocessable } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { OutboundClient, OutboundError } from '../core/outbound.js';
import { afterTimeCursor, cursorTime, type Page, toPage } from '../core/pagination.js';
import { isUuid } from '../core/validation.js';
import { openSealed, type SealedColumn, seal, secretsKey } from '../secrets/index.js';
import { type Db, type DbOrTx, transaction } from '../store/db.js';
import {
  type WebhookDeliveriesTable,
  type WebhookDeliveryStatus,
  type WebhookEvent,
  type WebhooksTable,
  webhookEvents,
} from '../store/schema.js';

export type { WebhookDeliveryStatus, WebhookEvent };
export type WebhookRow = Selectable<WebhooksTable>;
export type DeliveryRow = Selectable<WebhookDeliveriesTable>;

/** Delivery tuning; the defaults suit production, tests shrink the delays through `service.options`. */
export interface WebhookOptions {
  /** Attempts of one delivery (the first one included) before a retryable failure is final. */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Deliveries in flight at once per instance. */
  concurrency: number;
  /** Whole-request deadline of one attempt. */
  timeoutMs: number;
  /** How long a claimed row is reserved for its attempt (a crash mid-send → retried after it). */
  leaseMs: number;
  pollIntervalMs: number;
  /** Hosts/CIDRs that may be reached although internal (config `outbound_allow_list`). */
  outboundAllow: string[];
  maxWebhooksPerProject: number;
}

export const defaultWebhookOptions: WebhookOptions = {
  // Retries after about 10 s, 20 s, 40 s, 80 s and 160 s: a receiver restarting is covered.
  maxAttempts: 6,
  backoffBaseMs: 10_000,
  backoffMaxMs: 10 * 60_000,
  concurrency: 4,
  timeoutMs: 10_000,
  leaseMs: 60_000,
  pollIntervalMs: 1_000,
  outboundAllow: [],
  maxWebhooksPerProject: 20,
};

export interface WebhookView {
  id: string;
  project_id: string;
  url: string;
  events: WebhookEvent[];
  active: boolean;
  has_secret: boolean;
  created_by: string | null;
  created_at: string;
  updated_at: string;
}

export interface DeliveryView {
  id: string;
  webhook_id: string;
  delivery_id: string;
  event: string;
  attempt: number;
  status: WebhookDeliveryStatus;
  status_code: number | null;
  duration_ms: number | null;
  error: string | null;
  created_at: string;
  finished_at: string | null;
}

export interface DeliveryDetailView extends DeliveryView {
  /** The JSON body that was (or will be) sent, parsed. */
  payload: unknown;
}

export interface CreateWebhookInput {
  url: string;
  events: WebhookEvent[];
  secret?: string | null | undefined;
  active?: boolean | undefined;
}

export interface UpdateWebhookInput {
  url?: string | undefined;
  events?: WebhookEvent[] | undefined;
  /** null removes the secret (deliveries go unsigned). */
  secret?: string | null | undefined;
  active?: boolean | undefined;
}

export interface ProjectRef {
  id: string;
  name: string;
  full_name: string;
}

const iso = (d: Date | string): string => new Date(d).toISOString();
const isoOrNull = (d: Date | string | null): string | null => (d === null ? null : iso(d));

/**
 * Binds a project webhook's signing secret to its row: a ciphertext copied to another webhook (or to
 * a user-level notification webhook, which uses its own prefix) fails to open.
 */
const webhookAad = (projectId: string, webhookId: string) =>
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

/** Canonical order, no duplicates: the stored list reads the same whatever order the client sent. */
const normalizeEvents = (events: readonly WebhookEvent[]): WebhookEvent[] =>
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
    finished_at: isoOrNull(r.finished_at),
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

/** Only the host of a URL goes to the audit log: webhook URLs often carry a token in the path. */
const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
};

/**
 * Project webhooks: CRUD (secrets sealed with the master key, never returned), the outbox writer
 * (`enqueue`, one pending row per webhook and event) and the delivery log. Sending is the worker's job.
 */
export class WebhooksService {
  private client: { key: string; client: OutboundClient } | null = null;
  /** Called after rows were committed, so the worker looks now (it also polls). */
  onEnqueued: () => void = () => {};

  constructor(
    private readonly db: Db,
    private readonly masterKey: Buffer,
    /** Shared with the worker and read at each use: tests change it in place. */
    readonly options: WebhookOptions,
    private readonly log: Logger,
  ) {}

  /** The SSRF-guarded client for the current allow-list and timeout (rebuilt when they change). */
  get outbound(): OutboundClient {
    const key = `${this.options.timeoutMs}|${this.options.outboundAllow.join(',')}`;
    if (this.client?.key !== key) {
      this.client = {
        key,
        client: new OutboundClient({ allow: this.options.outboundAllow, timeoutMs: this.options.timeoutMs }),
      };
    }
    return this.client.client;
  }

  /** Adjusts delivery tuning at run time (tests shrink delays and timeouts). */
  configure(changes: Partial<WebhookOptions>): void {
    Object.assign(this.options, changes);
  }

  /**
   * Refuses URLs the outbound client would refuse to call: 422 naming the reason. A name that does
   * not resolve now is accepted (DNS may be down, the receiver not deployed yet): every attempt is
   * checked again before it connects.
   */
  async checkUrl(url: string): Promise<void> {
    try {
      await this.outbound.check(url);
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err;
      if (err.kind !== 'network') {
        throw unprocessable(`webhook URL refused: ${err.message}`, [
          { path: 'body.url', message: err.message, reason: err.kind },
        ]);
      }
    }
    // new URL() accepts "http:host" too; the stored form must be what the column check expects.
    if (!/^https?:\/\//i.test(url)) {
      throw unprocessable('webhook URL refused: it must start with http:// or https://', [
        { path: 'body.url', message: 'must start with http:// or https://', reason: 'invalid_url' },
      ]);
    }
  }

  private async row(db: DbOrTx, projectId: string, hookId: string, lock = false): Promise<WebhookRow> {
    let q = db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', hookId)
      .where('project_id', '=', projectId);
    if (lock) q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw notFound('webhook');
    return row;
  }

  async get(projectId: string, hookId: string): Promise<WebhookView> {
    return webhookView(await this.row(this.db, projectId, hookId));
  }

  async list(
    projectId: string,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<Page<WebhookView>> {
    let q = this.db
      .selectFrom('webhooks')
      .selectAll()
      .select(cursorTime('created_at').as('cursor_at'))
      .where('project_id', '=', projectId);
    if (page.cursor) q = q.where(afterTimeCursor(page.cursor, { time: 'created_at', id: 'id' }));
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(page.limit + 1)
      .execute();
    return toPage(rows, page.limit, (r) => [r.cursor_at, r.id], webhookView);
  }

  async create(actor: Actor, projectId: string, input: CreateWebhookInput): Promise<WebhookView> {
    // Resolved before the transaction: DNS must not hold a database connection (PGlite has one).
    await this.checkUrl(input.url);
    const key = secretsKey(this.masterKey);
    const events = normalizeEvents(input.events);
    const row = await transaction(this.db, async (trx) => {
      // The project row lock serialises concurrent creates, so the per-project limit is exact.
      await trx.selectFrom('projects').select('id').where('id', '=', projectId).forUpdate().execute();
      const count = await trx
        .selectFrom('webhooks')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('project_id', '=', projectId)
        .executeTakeFirstOrThrow();
      if (Number(count.n) >= this.options.maxWebhooksPerProject) {
        throw conflict(`at most ${this.options.maxWebhooksPerProject} webhooks per project`, [
          { message: `the project has ${Number(count.n)} webhooks`, count: Number(count.n) },
        ]);
      }
      // The id is chosen here because the sealed secret is bound to it.
      const id = randomUUID();
      const created = await trx
        .insertInto('webhooks')
        .values({
          id,
          project_id: projectId,
          url: input.url,
          events: sql<WebhookEvent[]>`${events}::text[]`,
          secret_ciphertext: input.secret ? seal(key, input.secret, webhookAad(projectId, id)) : null,
          is_active: input.active ?? true,
          created_by: actor.id,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'webhook.create',
        resourceType: 'webhook',
        resourceId: id,
        projectId,
        detail: { host: hostOf(input.url), events, active: created.is_active, signed: Boolean(input.secret) },
      });
      return created;
    });
    return webhookView(row);
  }

  async update(
    actor: Actor,
    projectId: string,
    hookId: string,
    input: UpdateWebhookInput,
  ): Promise<WebhookView> {
    if (input.url !== undefined) {
      await this.row(this.db, projectId, hookId);
      await this.checkUrl(input.url);
    }
    const key = secretsKey(this.masterKey);
    const row = await transaction(this.db, async (trx) => {
      await this.row(trx, projectId, hookId, true);
      const sealed =
        input.secret === undefined
          ? undefined
          : input.secret === null
            ? null
            : seal(key, input.secret, webhookAad(projectId, hookId));
      const updated = await trx
        .updateTable('webhooks')
        .set({
          ...(input.url !== undefined ? { url: input.url } : {}),
          ...(input.events !== undefined
            ? { events: sql<WebhookEvent[]>`${normalizeEvents(input.events)}::text[]` }
            : {}),
          ...(sealed !== undefined ? { secret_ciphertext: sealed } : {}),
          ...(input.active !== undefined ? { is_active: input.active } : {}),
        })
        .where('id', '=', hookId)
        .returningAll()
        .executeTakeFirstOrThrow();
      await writeAudit(trx, {
        actor,
        action: 'webhook.update',
        resourceType: 'webhook',
        resourceId: hookId,
        projectId,
        detail: {
          changed: Object.keys(input).filter((k) => input[k as keyof UpdateWebhookInput] !== undefined),
          host: hostOf(updated.url),
          events: normalizeEvents(updated.events),
          active: updated.is_active,
          signed: updated.secret_ciphertext !== null,
        },
      });
      return updated;
    });
    return webhookView(row);
  }

  async remove(actor: Actor, projectId: string, hookId: string): Promise<void> {
    await transaction(this.db, async (trx) => {
      const row = await trx
        .deleteFrom('webhooks')
        .where('id', '=', hookId)
        .where('project_id', '=', projectId)
        .returning(['id', 'url'])
        .executeTakeFirst();
      if (!row) throw notFound('webhook');
      await writeAudit(trx, {
        actor,
        action: 'webhook.delete',
        resourceType: 'webhook',
        resourceId: hookId,
        projectId,
        detail: { host: hostOf(row.url) },
      });
    });
  }

  /** Queues a `ping` delivery to one webhook (sent even when the webhook is inactive: it was asked for). */
  async ping(actor: Actor, projectId: string, hookId: string): Promise<DeliveryView> {
    const row = await transaction(this.db, async (trx) => {
      const hook = await this.row(trx, projectId, hookId);
      const project = await projectRef(trx, projectId);
      if (!project) throw notFound('project');
      const deliveryId = randomUUID();
      const body = buildBody('ping', deliveryId, project, {
        hook_id: hook.id,
        events: normalizeEvents(hook.events),
        active: hook.is_active,
      });
      const [inserted] = await insertDeliveries(trx, [
        { webhookId: hook.id, deliveryId, event: 'ping', body },
      ]);
      await writeAudit(trx, {
        actor,
        action: 'webhook.test',
        resourceType: 'webhook',
        resourceId: hookId,
        projectId,
        detail: { delivery_id: deliveryId },
      });
      return inserted!;
    });
    this.onEnqueued();
    return deliveryView(row);
  }

  /**
   * The outbox writer of domain events: one pending row (attempt 1) per active webhook of the project
   * subscribed to the category, all in one transaction. Returns the number of rows written.
   */
  async enqueue(event: string, category: WebhookEvent, projectId: string, data: unknown): Promise<number> {
    if (!isUuid(projectId)) return 0;
    // Most events concern projects without webhooks: answered without opening a transaction.
    const hooks = await this.db
      .selectFrom('webhooks')
      .select('id')
      .where('project_id', '=', projectId)
      .where('is_active', '=', true)
      .where(sql<boolean>`${category} = any(events)`)
      .execute();
    if (hooks.length === 0) return 0;
    const written = await transaction(this.db, async (trx) => {
      const project = await projectRef(trx, projectId);
      if (!project) return 0;
      // Read again inside the transaction: a webhook deleted or disabled meanwhile gets nothing.
      const current = await trx
        .selectFrom('webhooks')
        .select('id')
        .where('project_id', '=', projectId)
        .where('is_active', '=', true)
        .where(sql<boolean>`${category} = any(events)`)
        .execute();
      const rows = current.map((h) => {
        const deliveryId = randomUUID();
        return { webhookId: h.id, deliveryId, event, body: buildBody(event, deliveryId, project, data) };
      });
      if (rows.length > 0) await insertDeliveries(trx, rows);
      return rows.length;
    });
    if (written > 0) {
      this.log.debug({ event, project_id: projectId, deliveries: written }, 'webhook deliveries queued');
      this.onEnqueued();
    }
    return written;
  }

  async deliveries(
    projectId: string,
    hookId: string,
    f: {
      limit: number;
      cursor?: string | undefined;
      status?: WebhookDeliveryStatus | undefined;
      delivery_id?: string | undefined;
    },
  ): Promise<Page<DeliveryView>> {
    await this.row(this.db, projectId, hookId);
    let q = this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .select(cursorTime('created_at').as('cursor_at'))
      .where('webhook_id', '=', hookId);
    if (f.status) q = q.where('status', '=', f.status);
    if (f.delivery_id) q = q.where('delivery_id', '=', f.delivery_id);
    if (f.cursor) q = q.where(afterTimeCursor(f.cursor, { time: 'created_at', id: 'id' }));
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(f.limit + 1)
      .execute();
    return toPage(rows, f.limit, (r) => [r.cursor_at, r.id], deliveryView);
  }

  async delivery(projectId: string, hookId: string, rowId: string): Promise<DeliveryDetailView> {
    await this.row(this.db, projectId, hookId);
    const row = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', rowId)
      .where('webhook_id', '=', hookId)
      .executeTakeFirst();
    if (!row) throw notFound('delivery');
    const body = deliveryBody(row);
    let payload: unknown = null;
    if (body !== null) {
      try {
        payload = JSON.parse(body);
      } catch {
        payload = null;
      }
    }
    return { ...deliveryView(row), payload };
  }

  /** What the worker needs to send for a webhook now: its URL, state and opened secret. */
  async target(
    webhookId: string,
  ): Promise<{ url: string; active: boolean; projectId: string; secret: Buffer | null } | null> {
    const row = await this.db
      .selectFrom('webhooks')
      .select(['url', 'is_active', 'project_id', 'secret_ciphertext'])
      .where('id', '=', webhookId)
      .executeTakeFirst();
    if (!row) return null;
    const secret = row.secret_ciphertext
      ? openSealed(secretsKey(this.masterKey), row.secret_ciphertext, webhookAad(row.project_id, webhookId))
      : null;
    return { url: row.url, active: row.is_active, projectId: row.project_id, secret };
  }
}

async function projectRef(db: DbOrTx, projectId: string): Promise<ProjectRef | undefined> {
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
function buildBody(event: string, deliveryId: string, project: ProjectRef, data: unknown): string {
  return JSON.stringify({
    event,
    delivery: deliveryId,
    project: { id: project.id, name: project.name, full_name: project.full_name },
    data: data ?? null,
    sent_at: new Date().toISOString(),
  });
}

async function insertDeliveries(
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
