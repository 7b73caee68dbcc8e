import { Counter } from 'prom-client';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { RbacService } from '../rbac/index.js';
import { subscribeWebhookDispatch } from './dispatch.js';
import { webhookRoutes } from './routes.js';
import { WebhooksService } from './service.js';
import { defaultWebhookOptions, type WebhookOptions } from './types.js';
import { DeliveryWorker } from './worker.js';

/** The delivery loop's name in the scheduler. */
export const WEBHOOK_DELIVERY_LOOP = 'webhooks.deliver';

/**
 * Project webhooks: the CRUD and delivery-log routes, the dispatcher (domain events → outbox rows),
 * and the delivery worker (every instance; rows claimed with SKIP LOCKED). `WebhooksService` is
 * `platform.services.webhooks`; its `options` object tunes delivery at run time.
 */
export function createWebhooksModule(
  ctx: ModuleContext,
  deps: { rbac: RbacService },
  overrides: Partial<WebhookOptions> = {},
): PlatformModule<WebhooksService> {
  const options: WebhookOptions = {
    ...defaultWebhookOptions,
    outboundAllow: [...ctx.config.outbound_allow_list],
    ...overrides,
  };
  const db = ctx.drivers.db.db;
  const log = ctx.log.child({ module: 'webhooks' });
  const service = new WebhooksService(db, ctx.masterKey, options, log);
  const outcomes = new Counter({
    name: 'platform_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (success, retry, failure)',
    labelNames: ['outcome'] as const,
    registers: [ctx.metrics.registry],
  });
  const worker = new DeliveryWorker(db, service, log, outcomes);
  service.onEnqueued = () => worker.kick();
  const pending = new Set<Promise<void>>();
  let unsubscribe: (() => void) | null = null;

  return {
    name: 'webhooks',
    routes: webhookRoutes(service, deps.rbac),
    service,
    start: async () => {
      unsubscribe = subscribeWebhookDispatch(ctx.events, service, pending, log);
      ctx.scheduler.add({
        name: WEBHOOK_DELIVERY_LOOP,
        intervalMs: options.pollIntervalMs,
        singleInstance: false,
        run: (signal) => worker.run(signal),
      });
    },
    stop: async () => {
      unsubscribe?.();
      unsubscribe = null;
      while (pending.size > 0) await Promise.allSettled([...pending]);
      await worker.stop();
    },
    settle: async () => {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}
