import { z } from 'zod';
import { webhookDeliveryStatuses, webhookEvents } from '../store/schema.js';

const timestamp = z.string().describe('ISO 8601');

export const WebhookSchema = z
  .object({
    id: z.uuid(),
    project_id: z.uuid(),
    url: z.string(),
    events: z.array(z.enum(webhookEvents)),
    active: z.boolean(),
    has_secret: z.boolean().describe('the secret itself is never returned'),
    created_by: z.uuid().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Webhook' });
export type WebhookView = z.output<typeof WebhookSchema>;

export const WebhookListSchema = z.object({
  items: z.array(WebhookSchema),
  next_cursor: z.string().nullable(),
});

const deliveryFields = {
  id: z.uuid().describe('this attempt'),
  webhook_id: z.uuid(),
  delivery_id: z.uuid().describe('sent as X-Platform-Delivery; shared by every attempt of one delivery'),
  event: z.string(),
  attempt: z.number().int(),
  status: z.enum(webhookDeliveryStatuses),
  status_code: z.number().int().nullable(),
  duration_ms: z.number().int().nullable(),
  error: z.string().nullable(),
  created_at: timestamp,
  finished_at: timestamp.nullable(),
};

export const WebhookDeliverySchema = z.object(deliveryFields).meta({ id: 'WebhookDelivery' });
export type DeliveryView = z.output<typeof WebhookDeliverySchema>;

export const WebhookDeliveryListSchema = z.object({
  items: z.array(WebhookDeliverySchema),
  next_cursor: z.string().nullable(),
});

export const WebhookDeliveryDetailSchema = z
  .object({ ...deliveryFields, payload: z.unknown().describe('the JSON body that was (or will be) sent') })
  .meta({ id: 'WebhookDeliveryDetail' });
export type DeliveryDetailView = z.output<typeof WebhookDeliveryDetailSchema>;
