import type { ModuleContext, PlatformModule } from '../core/module.js';
import { createObserveAlerting } from './alerts/alerting.js';
import type { BodyLimits } from './decode.js';
import { OtlpGrpcServer, type OtlpIdentity } from './grpc.js';
import { ObserveIngest } from './ingest.js';
import { lookupAgentSession } from './queries.js';
import { type RotationOptions, rotateOnce } from './rotation.js';
import { observeRoutes } from './routes.js';
import { ObserveService } from './service.js';

const HOUR = 3_600_000;

/** The cold-tier rotation loop's name in the scheduler (one instance at a time: its lease). */
export const OBSERVE_ROTATION_LOOP = 'observe.rotate';

export function rotationOptions(config: ModuleContext['config']): RotationOptions {
  return {
    hotHours: config.observe_hot_hours,
    retentionDays: config.observe_cold_retention_days,
    rowsPerFile: 250_000,
  };
}

/**
 * The observe module: OTLP/HTTP ingest (/v1/traces, /v1/logs, /v1/metrics) and, when
 * `otlp_grpc_address` is set, OTLP/gRPC ingest, both through bounded per-signal buffers; the
 * LogSink of the platform's producers, and the query API. `identity` authenticates gRPC callers
 * (HTTP requests are authenticated by the HTTP server before they reach the routes).
 */
export function createObserveModule(
  ctx: ModuleContext,
  deps: { identity: OtlpIdentity },
): PlatformModule<ObserveService> {
  const db = ctx.drivers.db.db;
  const log = ctx.log.child({ module: 'observe' });
  const config = ctx.config;
  const limits: BodyLimits = {
    maxBodyBytes: config.body_limit_bytes,
    maxDecodedBytes: 4 * config.body_limit_bytes,
  };
  const ingest = new ObserveIngest(
    db,
    ctx.drivers.pubsub,
    { lookup: (id) => lookupAgentSession(db, id) },
    {
      buffer: {
        maxRecords: config.observe_buffer_records,
        batchRecords: Math.min(5000, config.observe_buffer_records),
        lingerMs: config.observe_flush_ms,
      },
      // Late records are accepted for as long as they stay in the hot window (plus a day of slack).
      maxAgeMs: (config.observe_hot_hours + 24) * HOUR,
      maxFutureMs: 24 * HOUR,
    },
    log,
  );
  const service = new ObserveService(db, ctx.drivers.objects, ingest);
  // Observe II: alert rules and their evaluation loop, saved searches, the live tail.
  const alerting = createObserveAlerting(ctx);
  const grpc = config.otlp_grpc_address
    ? new OtlpGrpcServer(
        {
          address: config.otlp_grpc_address,
          // One limit in grpc-js: the message after decompression (HTTP's on the wire is the same figure).
          maxMessageBytes: config.body_limit_bytes,
          setting: 'PLATFORM_OTLP_GRPC_ADDRESS',
        },
        ingest,
        deps.identity,
        log,
      )
    : null;
  return {
    name: 'observe',
    routes: [...observeRoutes(service, limits), ...alerting.routes],
    service,
    start: async () => {
      // First: an address in use fails the start before any loop of this module runs.
      await grpc?.start();
      await alerting.start();
      ctx.scheduler.add({
        name: OBSERVE_ROTATION_LOOP,
        intervalMs: 5 * 60_000,
        run: async () => {
          const result = await rotateOnce(db, ctx.drivers.objects, rotationOptions(config), log);
          if (result.rotated.length > 0) ingest.forgetPartitions();
        },
      });
    },
    settle: () => service.flush(),
    stop: async () => {
      await alerting.stop();
      // Before the buffers close: in-flight exports still get their records written.
      await grpc?.stop();
      await ingest.close();
    },
  };
}
