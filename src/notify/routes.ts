import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { type AnyRouteDef, paginationQuery, route, uuidParam } from '../core/http.js';
import type { PubSub } from '../store/pubsub/index.js';
import { notificationChannels, notificationStatuses } from '../store/schema.js';
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

/** Open SSE streams, so shutdown can end them (an open stream would hold the server's close). */
export type StreamSet = Set<() => void>;

export function notifyRoutes(service: NotifyService, pubsub: PubSub, streams: StreamSet): AnyRouteDef[] {
  return [
    route({
      method: 'GET',
      url: '/api/notifications',
      summary: "The caller's notifications, newest first (in-app unless ?channel=)",
      tags: ['notifications'],
      access: 'authenticated',
      query: listQuery,
      handler: async ({ query, requirePrincipal }) => {
        const p = requirePrincipal();
        return service.list(p.userId, query);
      },
    }),
    route({
      method: 'GET',
      url: '/api/notifications/unread-count',
      summary: 'Number of unread in-app notifications of the caller',
      tags: ['notifications'],
      access: 'authenticated',
      handler: async ({ requirePrincipal }) => ({
        count: await service.unreadCount(requirePrincipal().userId),
      }),
    }),
    route({
      method: 'PATCH',
      url: '/api/notifications/:id/read',
      summary: 'Mark one in-app notification read',
      tags: ['notifications'],
      access: 'authenticated',
      params: uuidParam,
      handler: async ({ params, requirePrincipal, actor }) =>
        service.markRead(actor, requirePrincipal().userId, params.id),
    }),
    route({
      method: 'POST',
      url: '/api/notifications/read-all',
      summary: "Mark all of the caller's in-app notifications read",
      tags: ['notifications'],
      access: 'authenticated',
      handler: async ({ requirePrincipal, actor }) => ({
        updated: await service.markAllRead(actor, requirePrincipal().userId),
      }),
    }),
    route({
      method: 'GET',
      url: '/api/notifications/preferences',
      summary: "The caller's notification preferences (types not listed use the defaults)",
      tags: ['notifications'],
      access: 'authenticated',
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
      access: 'authenticated',
      body: preferencesBody,
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
      access: 'authenticated',
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
      access: 'authenticated',
      body: webhookBody,
      status: 201,
      handler: async ({ body, requirePrincipal, actor }) =>
        service.createWebhook(actor, requirePrincipal().userId, body),
    }),
    route({
      method: 'DELETE',
      url: '/api/notifications/webhooks/:id',
      summary: 'Remove a notification webhook',
      tags: ['notifications'],
      access: 'authenticated',
      params: uuidParam,
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
      access: 'authenticated',
      raw: true,
      handler: async ({ req, reply, requirePrincipal }) => {
        const userId = requirePrincipal().userId;
        const res: ServerResponse = reply.raw;
        let open = true;
        const write = (chunk: string) => {
          if (open) res.write(chunk);
        };
        // Subscribed before the headers go out: a client that has the response misses nothing after it.
        const unsubscribe = await pubsub.subscribe(userChannel(userId), (message) => {
          const m = message as { notification?: { id?: string } };
          write(
            `event: notification\nid: ${m.notification?.id ?? ''}\ndata: ${JSON.stringify(m.notification)}\n\n`,
          );
        });
        const headers: Record<string, string | number | string[]> = {};
        for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v;
        reply.hijack();
        res.writeHead(200, {
          ...headers,
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        write(`retry: 3000\nevent: ready\ndata: {"unread":${await service.unreadCount(userId)}}\n\n`);

        const server = req.server.server;
        const wasListening = server.listening;
        const heartbeat = setInterval(() => write(': ping\n\n'), service.options.heartbeatMs);
        // The HTTP server's close() waits for open connections; a stream notices the server stopped
        // listening and ends itself, so shutdown is not held by a browser tab.
        const watch = setInterval(() => {
          if (wasListening && !server.listening) end();
        }, 500);
        heartbeat.unref();
        watch.unref();
        const end = () => {
          if (!open) return;
          open = false;
          clearInterval(heartbeat);
          clearInterval(watch);
          streams.delete(end);
          void unsubscribe().catch(() => {});
          res.end();
        };
        streams.add(end);
        req.raw.on('close', end);
        res.on('close', end);
        if (req.raw.destroyed || res.destroyed) end();
        return reply;
      },
    }),
  ];
}
