import type { Selectable } from 'kysely';
import type { Logger } from 'pino';
import { writeAudit } from '../core/audit.js';
import { badRequest, conflict, notFound } from '../core/errors.js';
import type { Actor } from '../core/http.js';
import { type OutboundClient, OutboundError } from '../core/outbound.js';
import { openSealed, type SealedColumn, seal, secretsKey } from '../secrets/index.js';
import { type Db, transaction } from '../store/db.js';
import type { NotificationWebhooksTable } from '../store/schema.js';
import { NOTIFY_REASONS } from './reasons.js';
import type { NotificationWebhookView } from './schemas.js';

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

const view = (r: Selectable<NotificationWebhooksTable>): NotificationWebhookView => ({
  id: r.id,
  url: r.url,
  is_active: r.is_active,
  has_secret: r.secret_ciphertext !== null,
  created_at: new Date(r.created_at).toISOString(),
});

/** A user's own webhooks (the notify module's `webhook` channel): CRUD and the opened secret. */
export class UserWebhooks {
  constructor(
    private readonly db: Db,
    private readonly masterKey: Buffer,
    private readonly limits: { readonly maxWebhooksPerUser: number },
    private readonly outbound: () => OutboundClient,
    private readonly log: Logger,
  ) {}

  async list(userId: string): Promise<NotificationWebhookView[]> {
    const rows = await this.db
      .selectFrom('notification_webhooks')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();
    return rows.map(view);
  }

  /** Adds a user-level webhook; the URL must pass the SSRF guard now (and is checked again per delivery). */
  async create(
    actor: Actor,
    userId: string,
    input: { url: string; secret?: string | undefined },
  ): Promise<NotificationWebhookView> {
    try {
      await this.outbound().check(input.url);
    } catch (err) {
      if (err instanceof OutboundError) {
        const hint =
          err.kind === 'blocked'
            ? '; to allow an internal receiver, add its host to PLATFORM_OUTBOUND_ALLOW_LIST'
            : '';
        throw badRequest(`webhook URL refused${hint}`, [{ path: 'body.url', message: err.message }]).because(
          NOTIFY_REASONS.webhookUrlRefused,
        );
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
      if (Number(count.n) >= this.limits.maxWebhooksPerUser) {
        throw conflict(`at most ${this.limits.maxWebhooksPerUser} notification webhooks per user`).because(
          NOTIFY_REASONS.webhookLimit,
        );
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
    return view(row);
  }

  async remove(actor: Actor, userId: string, id: string): Promise<void> {
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

  /** The signing secret of a user's active webhook at this URL (`found: false` when there is none). */
  async secret(userId: string, url: string): Promise<{ found: boolean; secret: Buffer | null }> {
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
