import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { writeAudit } from '../core/audit.js';
import { AppError, conflict, forbidden, notFound, unprocessable } from '../core/errors.js';
import type { Actor, Principal } from '../core/http.js';
import { OutboundClient, OutboundError } from '../core/outbound.js';
import type { Page } from '../core/pagination.js';
import { isUuid } from '../core/validation.js';
import type { RbacService } from '../rbac/index.js';
import { openSealed, seal, secretsKey } from '../secrets/index.js';
import { type Db, type DbOrTx, transaction } from '../store/db.js';
import type { WebhookEvent } from '../store/schema.js';
import {
  buildBody,
  type DeliveryFilter,
  deliveryBody,
  deliveryView,
  insertDeliveries,
  listDeliveries,
  listWebhooks,
  normalizeEvents,
  projectRef,
  subscribedWebhooks,
  type WebhookRow,
  webhookAad,
  webhookRow,
  webhookView,
} from './queries.js';
import { ALLOW_LIST_HINT, WEBHOOK_REASONS } from './reasons.js';
import type { DeliveryDetailView, DeliveryView, WebhookView } from './schemas.js';
import type { CreateWebhookInput, UpdateWebhookInput, WebhookOptions } from './types.js';

/** Only the host of a URL goes to the audit log: webhook URLs often carry a token in the path. */
const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
};

/**
 * Webhooks are the project owner's or an admin's, reading included: URLs often carry tokens. A
 * project the caller cannot see stays hidden (404) before the owner check (403).
 */
export async function assertCanManageWebhooks(
  rbac: RbacService,
  principal: Principal | null,
  projectId: string,
): Promise<void> {
  try {
    await rbac.assertCanChangeSettings(principal, projectId);
  } catch (err) {
    if (err instanceof AppError && err.status === 403) {
      throw forbidden('only the project owner or an admin may manage its webhooks').because(
        WEBHOOK_REASONS.ownerOnly,
      );
    }
    throw err;
  }
}

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
   * Refuses URLs the outbound client would refuse to call: 422 naming the reason (a non-public
   * address names the allow-list setting that admits it). A name that does
   * not resolve now is accepted (DNS may be down, the receiver not deployed yet): every attempt is
   * checked again before it connects.
   */
  async checkUrl(url: string): Promise<void> {
    try {
      await this.outbound.check(url);
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err;
      if (err.kind === 'blocked') {
        throw unprocessable(`webhook URL refused: ${err.message}; ${ALLOW_LIST_HINT}`, [
          { path: 'body.url', message: err.message, reason: err.kind },
        ]).because(WEBHOOK_REASONS.nonPublicAddress);
      }
      if (err.kind !== 'network') {
        throw unprocessable(`webhook URL refused: ${err.message}`, [
          { path: 'body.url', message: err.message, reason: err.kind },
        ]).because(WEBHOOK_REASONS.invalidUrl);
      }
    }
    // new URL() accepts "http:host" too; the stored form must be what the column check expects.
    if (!/^https?:\/\//i.test(url)) {
      throw unprocessable('webhook URL refused: it must start with http:// or https://', [
        { path: 'body.url', message: 'must start with http:// or https://', reason: 'invalid_url' },
      ]).because(WEBHOOK_REASONS.invalidUrl);
    }
  }

  private async row(db: DbOrTx, projectId: string, hookId: string, lock = false): Promise<WebhookRow> {
    const row = await webhookRow(db, projectId, hookId, lock);
    if (!row) throw notFound('webhook');
    return row;
  }

  async get(projectId: string, hookId: string): Promise<WebhookView> {
    return webhookView(await this.row(this.db, projectId, hookId));
  }

  list(projectId: string, page: { limit: number; cursor?: string | undefined }): Promise<Page<WebhookView>> {
    return listWebhooks(this.db, projectId, page);
  }

  async create(actor: Actor, projectId: string, input: CreateWebhookInput): Promise<WebhookView> {
    // Resolved before the transaction: a slow DNS answer must not hold a pooled connection.
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
        ]).because(WEBHOOK_REASONS.limitReached);
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
    if ((await subscribedWebhooks(this.db, projectId, category)).length === 0) return 0;
    const written = await transaction(this.db, async (trx) => {
      const project = await projectRef(trx, projectId);
      if (!project) return 0;
      // Read again inside the transaction: a webhook deleted or disabled meanwhile gets nothing.
      const current = await subscribedWebhooks(trx, projectId, category);
      const rows = current.map((webhookId) => {
        const deliveryId = randomUUID();
        return { webhookId, deliveryId, event, body: buildBody(event, deliveryId, project, data) };
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

  async deliveries(projectId: string, hookId: string, f: DeliveryFilter): Promise<Page<DeliveryView>> {
    await this.row(this.db, projectId, hookId);
    return listDeliveries(this.db, hookId, f);
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
