import type { ModuleContext, PlatformModule } from '../core/module.js';
import { Mailer } from './email.js';
import { notifyRoutes, type StreamSet } from './routes.js';
import { NotifyService } from './service.js';
import { subscribeDomainEvents } from './subscriptions.js';
import { defaultNotifyOptions, type NotifyOptions } from './types.js';
import { NotificationWorker } from './worker.js';

/** The delivery loop's name in the scheduler. */
export const NOTIFY_DELIVERY_LOOP = 'notify.deliver';

/**
 * The notify module: the outbox writer (`NotifyService` as `platform.services.notify`), the
 * delivery worker (every instance; rows claimed with SKIP LOCKED), domain-event subscriptions and
 * the /api/notifications routes.
 */
export function createNotifyModule(
  ctx: ModuleContext,
  overrides: Partial<NotifyOptions> = {},
): PlatformModule<NotifyService> {
  const options: NotifyOptions = {
    ...defaultNotifyOptions,
    outboundAllow: ctx.config.outbound_allow_list,
    ...overrides,
  };
  const db = ctx.drivers.db.db;
  const log = ctx.log.child({ module: 'notify' });
  const mailer = ctx.config.smtp_host ? new Mailer(ctx.config, options.smtpTimeoutMs) : null;
  const service = new NotifyService(db, ctx.masterKey, options, mailer !== null, log);
  const worker = new NotificationWorker(db, ctx.drivers.pubsub, service, mailer, options, log);
  const streams: StreamSet = new Set();
  let unsubscribe: (() => void)[] = [];

  // notify() runs inside the caller's transaction, which commits after it returns: look a moment
  // later (the poll picks up anything committed later still).
  service.onEnqueued = () => {
    setTimeout(() => worker.kick(), 25).unref();
  };

  return {
    name: 'notify',
    routes: notifyRoutes(service, ctx.drivers.pubsub, streams),
    service,
    start: async () => {
      unsubscribe = subscribeDomainEvents(ctx.events, db, service, log, () => worker.kick());
      ctx.scheduler.add({
        name: NOTIFY_DELIVERY_LOOP,
        intervalMs: options.pollIntervalMs,
        singleInstance: false,
        run: (signal) => worker.run(signal),
      });
    },
    stop: async () => {
      for (const off of unsubscribe) off();
      for (const end of [...streams]) end();
      await worker.stop();
      mailer?.close();
    },
  };
}
