import { z } from 'zod';
import { notificationChannels, notificationStatuses } from '../store/schema.js';

const timestamp = z.string().describe('ISO 8601');

export const NotificationSchema = z
  .object({
    id: z.uuid(),
    type: z.string().describe('event type, e.g. pipeline.failed, mr.opened, digest'),
    subject: z.string(),
    body: z.string(),
    channel: z.enum(notificationChannels),
    status: z.enum(notificationStatuses),
    project_id: z.uuid().nullable(),
    ref_type: z.string().nullable(),
    ref_id: z.string().nullable(),
    group_count: z.number().int(),
    attempts: z.number().int(),
    error: z.string().nullable(),
    created_at: timestamp,
    sent_at: timestamp.nullable(),
    read_at: timestamp.nullable(),
  })
  .meta({ id: 'Notification' });
export type NotificationView = z.output<typeof NotificationSchema>;

export const NotificationListSchema = z.object({
  items: z.array(NotificationSchema),
  next_cursor: z.string().nullable(),
});

export const UnreadCountSchema = z.object({ count: z.number().int() });
export const ReadAllSchema = z.object({ updated: z.number().int() });

export const NotificationPreferenceSchema = z.object({
  event_type: z.string().describe('an event type such as pipeline.failed, or *'),
  channels: z.array(z.enum(notificationChannels)),
});
export type PreferenceView = z.output<typeof NotificationPreferenceSchema>;

export const NotificationPreferencesSchema = z
  .object({
    items: z.array(NotificationPreferenceSchema),
    defaults: z
      .object({ in_app: z.string(), email: z.string(), webhook: z.string() })
      .describe('what each channel gets for event types not listed'),
  })
  .meta({ id: 'NotificationPreferences' });

export const NotificationWebhookSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    is_active: z.boolean(),
    has_secret: z.boolean().describe('the secret itself is never returned'),
    created_at: timestamp,
  })
  .meta({ id: 'NotificationWebhook' });
export type NotificationWebhookView = z.output<typeof NotificationWebhookSchema>;

export const NotificationWebhookListSchema = z.object({
  items: z.array(NotificationWebhookSchema),
  next_cursor: z.null(),
});
