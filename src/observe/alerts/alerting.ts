import type { AnyRouteDef } from '../../core/http.js';
import type { ModuleContext } from '../../core/module.js';
import { OBSERVE_LOGS_CHANNEL } from '../ingest.js';
import { savedSearchRoutes } from '../saved-searches/routes.js';
import { SavedSearchesService } from '../saved-searches/service.js';
import { defaultTailOptions, LiveTailHub, type TailOptions } from '../tail/hub.js';
import { tailRoutes } from '../tail/routes.js';
import { AlertEvaluator, type EvaluatorOptions } from './evaluate.js';
import { alertRoutes } from './routes.js';
import { AlertsService } from './service.js';

export const ALERT_LOOP = 'observe.alerts';

export interface ObserveAlerting {
  routes: AnyRouteDef[];
  alerts: AlertsService;
  evaluator: AlertEvaluator;
  tail: LiveTailHub;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Observe II inside the observe module: alert rules and their evaluation loop (one instance per
 * tick, through the scheduler's lease), saved searches, and the live tail fed by `observe.logs`.
 */
export function createObserveAlerting(
  ctx: ModuleContext,
  options: { evaluator?: Partial<EvaluatorOptions>; tail?: Partial<TailOptions> } = {},
): ObserveAlerting {
  const db = ctx.drivers.db.db;
  const log = ctx.log.child({ module: 'observe', part: 'alerting' });
  const alerts = new AlertsService(db);
  const evaluator = new AlertEvaluator(db, ctx.events, log, {
    concurrency: 4,
    queryTimeoutMs: 10_000,
    ...options.evaluator,
  });
  const tail = new LiveTailHub(
    ctx.drivers.pubsub,
    OBSERVE_LOGS_CHANNEL,
    { ...defaultTailOptions, ...options.tail },
    log,
  );
  const streams = new Set<() => void>();
  const searches = new SavedSearchesService(
    db,
    ctx.config.public_url ?? `http://localhost:${ctx.config.port}`,
  );
  return {
    routes: [...alertRoutes(alerts), ...savedSearchRoutes(searches), ...tailRoutes(db, tail, streams)],
    alerts,
    evaluator,
    tail,
    async start() {
      await tail.start();
      ctx.scheduler.add({
        name: ALERT_LOOP,
        intervalMs: ctx.config.alert_evaluation_interval_seconds * 1000,
        run: async (signal) => {
          const r = await evaluator.tick(signal);
          if (r.failed) log.debug({ ...r }, 'alert evaluation pass with failures');
        },
      });
    },
    async stop() {
      for (const end of [...streams]) end();
      await tail.stop();
    },
  };
}
