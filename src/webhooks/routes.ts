import { z } from 'zod';
import { AppError, forbidden } from '../core/errors.js';
import { type AnyRouteDef, paginationQuery, type RouteContext, route } from '../core/http.js';
import type { RbacService } from '../rbac/index.js';
import { webhookDeliveryStatuses, webhookEvents } from '../store/schema.js';
import type { WebhooksService } from './service.js';

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

type Ctx = Pick<RouteContext<unknown, unknown, unknown>, 'principal'>;

export function webhookRoutes(service: WebhooksService, rbac: RbacService): AnyRouteDef[] {
  /**
   * Webhooks are the project owner's or an admin's, reading included: URLs often carry tokens. A
   * project the caller cannot see stays hidden (404) before the owner check (403).
   */
  const assertCanManage = async (ctx: Ctx, projectId: string): Promise<void> => {
    try {
      await rbac.assertCanChangeSettings(ctx.principal, projectId);
    } catch (err) {
      if (err instanceof AppError && err.status === 403) {
        throw forbidden('only the project owner or an admin may manage its webhooks');
      }
      throw err;
    }
  };

  return [
    route({
      method: 'GET',
      url: '/api/projects/:id/webhooks',
      summary: 'Webhooks of a project (project owner or admin; secrets are never returned)',
      tags: ['webhooks'],
      access: 'authenticated',
      params: projectParams,
      query: paginationQuery,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        return service.list(ctx.params.id, ctx.query);
      },
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/webhooks',
      summary: 'Add a webhook (events: push, mr, issue, pipeline, deploy, session, alert)',
      tags: ['webhooks'],
      access: 'authenticated',
      status: 201,
      params: projectParams,
      body: createBody,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        return service.create(ctx.actor, ctx.params.id, ctx.body);
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/webhooks/:hookId',
      summary: 'A webhook of a project',
      tags: ['webhooks'],
      access: 'authenticated',
      params: hookParams,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        return service.get(ctx.params.id, ctx.params.hookId);
      },
    }),
    route({
      method: 'PATCH',
      url: '/api/projects/:id/webhooks/:hookId',
      summary: 'Change a webhook (secret: null removes the secret)',
      tags: ['webhooks'],
      access: 'authenticated',
      params: hookParams,
      body: updateBody,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        return service.update(ctx.actor, ctx.params.id, ctx.params.hookId, ctx.body);
      },
    }),
    route({
      method: 'DELETE',
      url: '/api/projects/:id/webhooks/:hookId',
      summary: 'Remove a webhook and its delivery log',
      tags: ['webhooks'],
      access: 'authenticated',
      params: hookParams,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        await service.remove(ctx.actor, ctx.params.id, ctx.params.hookId);
        return undefined;
      },
    }),
    route({
      method: 'POST',
      url: '/api/projects/:id/webhooks/:hookId/test',
      summary: 'Queue a ping delivery to the webhook (202 with the delivery id)',
      tags: ['webhooks'],
      access: 'authenticated',
      status: 202,
      params: hookParams,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        return service.ping(ctx.actor, ctx.params.id, ctx.params.hookId);
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/webhooks/:hookId/deliveries',
      summary: 'Every delivery attempt of a webhook, newest first (filters: status, delivery_id)',
      tags: ['webhooks'],
      access: 'authenticated',
      params: hookParams,
      query: deliveriesQuery,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        return service.deliveries(ctx.params.id, ctx.params.hookId, ctx.query);
      },
    }),
    route({
      method: 'GET',
      url: '/api/projects/:id/webhooks/:hookId/deliveries/:deliveryRowId',
      summary: 'One delivery attempt with the body that was sent',
      tags: ['webhooks'],
      access: 'authenticated',
      params: deliveryParams,
      handler: async (ctx) => {
        await assertCanManage(ctx, ctx.params.id);
        return service.delivery(ctx.params.id, ctx.params.hookId, ctx.params.deliveryRowId);
      },
    }),
  ];
}
