import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** One registry per app instance (tests run several in one process). */
export function createMetrics() {
  const registry = new Registry();
  // The default metrics are already named process_* and nodejs_*: the prefix adds only `platform_`.
  collectDefaultMetrics({ register: registry, prefix: 'platform_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'platform_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'platform_http_request_duration_seconds',
      help: 'HTTP request latency by method and route',
      labelNames: ['method', 'route'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    loopRuns: new Counter({
      name: 'platform_scheduler_runs_total',
      help: 'Background loop runs by loop and outcome',
      labelNames: ['loop', 'outcome'] as const,
      registers: [registry],
    }),
    dbPool: new Gauge({
      name: 'platform_db_pool_connections',
      help: 'Database connections by state',
      labelNames: ['state'] as const,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'platform_queue_depth',
      help: 'Pending items per work queue',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
