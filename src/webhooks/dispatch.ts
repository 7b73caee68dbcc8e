import type { Logger } from 'pino';
import type { EventBus } from '../core/events.js';
import type { WebhookEvent } from '../store/schema.js';
import type { WebhooksService } from './service.js';

/** Domain event name prefixes → the webhook category a subscriber picks. */
const CATEGORY_BY_PREFIX: readonly (readonly [string, WebhookEvent])[] = [
  ['push.', 'push'],
  ['mr.', 'mr'],
  ['issue.', 'issue'],
  ['pipeline.', 'pipeline'],
  ['deployment.', 'deploy'],
  ['session.', 'session'],
  ['alert.', 'alert'],
];

/** The webhook category of a domain event, or null when webhooks do not carry it. */
export function webhookCategory(eventName: string): WebhookEvent | null {
  for (const [prefix, category] of CATEGORY_BY_PREFIX) {
    if (eventName.startsWith(prefix) && eventName.length > prefix.length) return category;
  }
  return null;
}

/** Internal routing data of events (who gets notified): not for receivers. */
const INTERNAL_KEYS = new Set(['recipientIds']);

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * The event as receivers see it: the API's snake_case field names, without internal routing data.
 * Domain events are plain JSON-like objects (ids, names, numbers, strings, arrays).
 */
export function webhookData(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(webhookData);
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!INTERNAL_KEYS.has(key)) out[snake(key)] = webhookData(v);
  }
  return out;
}

/**
 * Turns every domain event of a webhook category into deliveries (the event is emitted after the
 * emitter's commit). The work each event starts is kept in `pending` so `settle()` can wait for it.
 * Returns the unsubscribe function.
 */
export function subscribeWebhookDispatch(
  events: EventBus,
  service: WebhooksService,
  pending: Set<Promise<void>>,
  log: Logger,
): () => void {
  return events.onAny((name, payload) => {
    const category = webhookCategory(name);
    if (!category) return;
    const projectId = (payload as { projectId?: unknown } | null)?.projectId;
    if (typeof projectId !== 'string') return;
    const work = service
      .enqueue(name, category, projectId, webhookData(payload))
      .then(() => undefined)
      .catch((err: unknown) =>
        log.error({ err, event: name, project_id: projectId }, 'queueing webhook deliveries failed'),
      )
      .finally(() => pending.delete(work));
    pending.add(work);
    return work;
  });
}
