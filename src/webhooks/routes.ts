import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, type RouteDef, route } from '../core/http.js';
import type { RbacService } from '../rbac/index.js';
import { webhookDeliveryStatuses, webhookEvents } from '../store/schema.js';
import { WEBHOOK_REASONS } from './reasons.js';
import {
  WebhookDeliveryDetailSchema,
  WebhookDeliveryListSchema,
  WebhookDeliverySchema,
  WebhookListSchema,
  WebhookSchema,
} from './schemas.js';
import { assertCanManageWebhooks, type WebhooksService } from './service.js';

const URL_REASONS = [WEBHOOK_REASONS.nonPublicAddress, WEBHOOK_REASONS.invalidUrl];

const projectParams = z.object({ id: z.uuid() });
const hookParams = z.object({ id: z.uuid(), hookId: z.uuid() });
const deliveryParams = hookParams.extend({ deliveryRowId: z.uuid() });

// The scheme and the address are the SSRF guard's to judge (422 naming the reason); this only
// refuses what is not a URL at all.
const url = z
  .string()
  .trim()
  .min(1)
  .max(2000)
  .refine((s) => URL.canParse(s), 'not a valid URL');
const events = z
  .array(z.enum(webhookEvents))
  .min(1, 'at least one event')
  .max(webhookEvents.length * 2);
const secret = z.string().min(8).max(256);

const createBody = z.object({
  url,
  events,
  secret: secret.nullish(),
  active: z.boolean().optional(),
});

const updateBody = z
  .object({
    url: url.optional(),
    events: events.optional(),
    secret: secret.nullable().optional(),
    active: z.boolean().optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), 'nothing to change: give at least one field');

const deliveriesQuery = paginationQuery.extend({
  status: z.enum(webhookDeliveryStatuses).optional(),
  delivery_id: z.uuid().optional(),
});

export function webhookRoutes(service: WebhooksService, rbac: RbacService): AnyRouteDef[] {
  /** Every webhook route is the project owner's or an admin's: checked first, then the handler. */
  const managed = <
    P extends z.ZodType | undefined,
    Q extends z.ZodType | undefined,
    B extends z.ZodType | undefined,
  >(
    def: RouteDef<P, Q, B>,
  ): AnyRouteDef =>
    route<P, Q, B>({
      ...def,
      reasons: [WEBHOOK_REASONS.ownerOnly, ...(def.reasons ?? [])],
      handler: async (ctx) => {
        // Every webhook route is under /api/projects/:id.
        await assertCanManageWebhooks(rbac, ctx.principal, (ctx.params as { id: string }).id);
        return def.handler(ctx);
      },
    });

  return [
    managed({
      method: 'GET',
      url: '/api/projects/:id/webhooks',
      summary: 'Webhooks of a project (project owner or admin; secrets are never returned)',
      tags: ['webhooks'],
      access: 'authenticated',
      params: projectParams,
      query: paginationQuery,
      response: WebhookListSchema,
      handler: async (ctx) => service.list(ctx.params.id, ctx.query),
    }),
    managed({
      method: 'POST',
      url: '/api/projects/:id/webhooks',
      summary: 'Add a webhook (events: push, mr, issue, pipeline, deploy, session, alert)',
      tags: ['webhooks'],
      access: 'authenticated',
      status: 201,
      params: projectParams,
      body: createBody,
      response: WebhookSchema,
      reasons: [...URL_REASONS, WEBHOOK_REASONS.limitReached],
      handler: async (ctx) => service.create(ctx.actor, ctx.params.id, ctx.body),
    }),
    managed({
      method: 'GET',
      url: '/api/projects/:id/webhooks/:hookId',
      summary: 'A webhook of a project',
      tags: ['webhooks'],
      access: 'authenticated',
      params: hookParams,
      response: WebhookSchema,
      handler: async (ctx) => service.get(ctx.params.id, ctx.params.hookId),
    }),
    managed({
      method: 'PATCH',
      url: '/api/projects/:id/webhooks/:hookId',
      summary: 'Change a webhook (secret: null removes the secret)',
      tags: ['webhooks'],
      access: 'authenticated',
      params: hookParams,
      body: updateBody,
      response: WebhookSchema,
      reasons: [...URL_REASONS],
      handler: async (ctx) => service.update(ctx.actor, ctx.params.id, ctx.params.hookId, ctx.body),
    }),
    managed({
      method: 'DELETE',
      url: '/api/projects/:id/webhooks/:hookId',
      summary: 'Remove a webhook and its delivery log',
      tags: ['webhooks'],
      access: 'authenticated',
      status: 204,
      params: hookParams,
      handler: async (ctx) => {
        await service.remove(ctx.actor, ctx.params.id, ctx.params.hookId);
        return undefined;
      },
    }),
    managed({
      method: 'POST',
      url: '/api/projects/:id/webhooks/:hookId/test',
      summary: 'Queue a ping delivery to the webhook (202 with the delivery id)',
      tags: ['webhooks'],
      access: 'authenticated',
      status: 202,
      params: hookParams,
      response: WebhookDeliverySchema,
      handler: async (ctx) => service.ping(ctx.actor, ctx.params.id, ctx.params.hookId),
    }),
    managed({
      method: 'GET',
      url: '/api/projects/:id/webhooks/:hookId/deliveries',
      summary: 'Every delivery attempt of a webhook, newest first (filters: status, delivery_id)',
      tags: ['webhooks'],
      access: 'authenticated',
      params: hookParams,
      query: deliveriesQuery,
      response: WebhookDeliveryListSchema,
      handler: async (ctx) => service.deliveries(ctx.params.id, ctx.params.hookId, ctx.query),
    }),
    managed({
      method: 'GET',
      url: '/api/projects/:id/webhooks/:hookId/deliveries/:deliveryRowId',
      summary: 'One delivery attempt with the body that was sent',
      tags: ['webhooks'],
      access: 'authenticated',
      params: deliveryParams,
      response: WebhookDeliveryDetailSchema,
      handler: async (ctx) => service.delivery(ctx.params.id, ctx.params.hookId, ctx.params.deliveryRowId),
    }),
  ];
}
