import { z } from 'zod';
import { type AnyRouteDef, type Principal, paginationQuery, route, uuidParam } from '../core/http.js';
import { type EventStream, openEventStream } from '../core/sse.js';
import type { PubSub } from '../store/pubsub/index.js';
import { notificationChannels, notificationStatuses } from '../store/schema.js';
import { NOTIFY_REASONS } from './reasons.js';
import {
  NotificationListSchema,
  NotificationPreferencesSchema,
  NotificationSchema,
  NotificationWebhookListSchema,
  NotificationWebhookSchema,
  ReadAllSchema,
  UnreadCountSchema,
} from './schemas.js';
import type { NotifyService } from './service.js';
import { userChannel } from './types.js';

const eventType = z
  .string()
  .min(1)
  .max(100)
  .regex(/^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_*]+)*)$/, 'an event type such as pipeline.failed, or *');

const listQuery = paginationQuery.extend({
  status: z.enum(notificationStatuses).optional(),
  type: eventType.optional(),
  channel: z.enum([...notificationChannels, 'all']).default('in_app'),
});

const preferencesBody = z.object({
  items: z
    .array(z.object({ event_type: eventType, channels: z.array(z.enum(notificationChannels)).max(3) }))
    .max(200),
});

const webhookBody = z.object({
  url: z.url({ protocol: /^https?$/ }).max(2000),
  secret: z.string().min(16).max(256).optional(),
});

const DEFAULTS_DESCRIPTION = {
  in_app: 'every event type',
  email: 'failures and alerts (e.g. pipeline.failed, alert.fired)',
  webhook: 'every event type, when a notification webhook is configured',
};

/** A project-restricted token sees only notifications about its project. */
const onlyProject = (p: Principal): string | null => p.token?.projectId ?? null;

/** Open SSE streams, so shutdown can end them (an open stream would hold the server's close). */
export type StreamSet = Set<() => void>;

export function notifyRoutes(service: NotifyService, pubsub: PubSub, streams: StreamSet): AnyRouteDef[] {
  return [
    route({
      method: 'GET',
      url: '/api/notifications',
      summary: "The caller's notifications, newest first (in-app unless ?channel=)",
      tags: ['notifications'],
      access: { self: 'project:read' },
      query: listQuery,
      response: NotificationListSchema,
      handler: async ({ query, requirePrincipal }) => {
        const p = requirePrincipal();
        return service.list(p.userId, query, onlyProject(p));
      },
    }),
    route({
      method: 'GET',
      url: '/api/notifications/unread-count',
      summary: 'Number of unread in-app notifications of the caller',
      tags: ['notifications'],
      access: { self: 'project:read' },
      response: UnreadCountSchema,
      handler: async ({ requirePrincipal }) => ({
        count: await service.unreadCount(requirePrincipal().userId, onlyProject(requirePrincipal())),
      }),
    }),
    route({
      method: 'PATCH',
      url: '/api/notifications/:id/read',
      summary: 'Mark one in-app notification read',
      tags: ['notifications'],
      access: { self: 'project:read' },
      params: uuidParam,
      response: NotificationSchema,
      reasons: [NOTIFY_REASONS.notInApp, NOTIFY_REASONS.notReadable],
      handler: async ({ params, requirePrincipal, actor }) =>
        service.markRead(actor, requirePrincipal().userId, params.id, onlyProject(requirePrincipal())),
    }),
    route({
      method: 'POST',
      url: '/api/notifications/read-all',
      summary: "Mark all of the caller's in-app notifications read",
      tags: ['notifications'],
      access: { self: 'project:read' },
      response: ReadAllSchema,
      handler: async ({ requirePrincipal, actor }) => ({
        updated: await service.markAllRead(actor, requirePrincipal().userId, onlyProject(requirePrincipal())),
      }),
    }),
    route({
      method: 'GET',
      url: '/api/notifications/preferences',
      summary: "The caller's notification preferences (types not listed use the defaults)",
      tags: ['notifications'],
      access: 'authenticated',
      response: NotificationPreferencesSchema,
      handler: async ({ requirePrincipal }) => ({
        items: await service.preferences(requirePrincipal().userId),
        defaults: DEFAULTS_DESCRIPTION,
      }),
    }),
    route({
      method: 'PUT',
      url: '/api/notifications/preferences',
      summary: "Replace the caller's notification preferences (event type or * → channels)",
      tags: ['notifications'],
      access: { self: 'account' },
      body: preferencesBody,
      response: NotificationPreferencesSchema,
      reasons: [NOTIFY_REASONS.duplicatePreference],
      handler: async ({ body, requirePrincipal, actor }) => ({
        items: await service.setPreferences(actor, requirePrincipal().userId, body.items),
        defaults: DEFAULTS_DESCRIPTION,
      }),
    }),
    route({
      method: 'GET',
      url: '/api/notifications/webhooks',
      summary: "The caller's notification webhooks (secrets are never returned)",
      tags: ['notifications'],
      // Their URLs often carry credentials: a full credential, like changing them.
      access: { self: 'account' },
      response: NotificationWebhookListSchema,
      handler: async ({ requirePrincipal }) => ({
        items: await service.webhooks(requirePrincipal().userId),
        next_cursor: null,
      }),
    }),
    route({
      method: 'POST',
      url: '/api/notifications/webhooks',
      summary: 'Add a notification webhook (signed with the secret when given)',
      tags: ['notifications'],
      access: { self: 'account' },
      body: webhookBody,
      status: 201,
      response: NotificationWebhookSchema,
      reasons: [NOTIFY_REASONS.webhookUrlRefused, NOTIFY_REASONS.webhookLimit],
      handler: async ({ body, requirePrincipal, actor }) =>
        service.createWebhook(actor, requirePrincipal().userId, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/notifications/webhooks/:id',
      summary: 'Remove a notification webhook',
      tags: ['notifications'],
      access: { self: 'account' },
      params: uuidParam,
      status: 204,
      handler: async ({ params, requirePrincipal, actor }) => {
        await service.deleteWebhook(actor, requirePrincipal().userId, params.id);
        return undefined;
      },
    }),
    route({
      method: 'GET',
      url: '/api/notifications/stream',
      summary: "Server-sent events: the caller's in-app notifications as they are delivered",
      tags: ['notifications'],
      access: { self: 'project:read' },
      raw: true,
      produces: {
        contentType: 'text/event-stream',
        description:
          '`ready` with the unread count, then one `notification` event per delivered in-app notification',
      },
      handler: async ({ req, reply, requirePrincipal }) => {
        const userId = requirePrincipal().userId;
        const only = onlyProject(requirePrincipal());
        let stream: EventStream | undefined;
        // Subscribed before the headers go out: a client that has the response misses nothing after it.
        const unsubscribe = await pubsub.subscribe(userChannel(userId), (message) => {
          const m = message as { notification?: { id?: string; project_id?: string | null } };
          if (only && m.notification?.project_id !== only) return;
          stream?.write(
            `event: notification\nid: ${m.notification?.id ?? ''}\ndata: ${JSON.stringify(m.notification)}\n\n`,
          );
        });
        stream = openEventStream(req, reply, {
          heartbeatMs: service.options.heartbeatMs,
          streams,
          onEnd: () => void unsubscribe().catch(() => {}),
        });
        stream.write(`event: ready\ndata: {"unread":${await service.unreadCount(userId, only)}}\n\n`);
        return reply;
      },
    }),
  ];
}
