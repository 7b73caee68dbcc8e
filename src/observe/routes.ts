import type { Readable } from 'node:stream';
import { badRequest, notFound, unauthorized } from '../core/errors.js';
import { type AnyRouteDef, type RouteContext, requestBodyType, route } from '../core/http.js';
import { type BodyLimits, encodingOf, readBody, type Signal } from './decode.js';
import { exportTelemetry } from './export.js';
import type { MatchOp } from './metrics.js';
import type { LogFilter } from './queries.js';
import { QUERY_REASONS } from './query-lang/index.js';
import { OBSERVE_REASONS } from './reasons.js';
import {
  logFilterQuery,
  logPage,
  logSummary,
  logsQuery,
  metricNames,
  metricNamesQuery,
  metricQuery,
  metricResult,
  sessionParams,
  timeline,
  timelineQuery,
  tracePage,
  traceParams,
  tracesQuery,
  traceView,
} from './schemas.js';
import type { ObserveService } from './service.js';

const INGEST_REASONS = [
  OBSERVE_REASONS.unsupportedContentType,
  OBSERVE_REASONS.unsupportedEncoding,
  OBSERVE_REASONS.bodyTooLarge,
  OBSERVE_REASONS.badGzip,
  OBSERVE_REASONS.malformedProtobuf,
  OBSERVE_REASONS.malformedJson,
  OBSERVE_REASONS.bufferFull,
  OBSERVE_REASONS.storeUnavailable,
  OBSERVE_REASONS.nothingPermitted,
];

// biome-ignore lint/suspicious/noExplicitAny: the route helpers accept every route's context.
type AnyContext = RouteContext<any, any, any>;

/** observe:read on the project when one is named, else platform-wide. */
async function authorizeRead(ctx: AnyContext, projectId: string | null | undefined): Promise<void> {
  await ctx.authorize('observe:read', projectId ?? null);
}

/** `key=value` pairs of the `attr` parameter. */
function attributePairs(values: string[] | undefined): [string, string][] {
  return (values ?? []).map((v) => {
    const at = v.indexOf('=');
    if (at <= 0) throw badRequest('attr must be key=value', [{ path: 'query.attr', message: v }]);
    return [v.slice(0, at), v.slice(at + 1)];
  });
}

function matchers(values: string[] | undefined): [string, MatchOp, string][] {
  return (values ?? []).map((v) => {
    const m = /^([^=!~]+)(=~|!~|!=|=)(.*)$/.exec(v);
    if (!m)
      throw badRequest('match must be key=value, key!=value, key=~regex or key!~regex', [
        { path: 'query.match', message: v },
      ]);
    return [m[1] as string, m[2] as MatchOp, m[3] as string];
  });
}

/** The log filter of the query parameters (shared by the search and the summary). */
export function logFilterOf(q: ReturnType<typeof logFilterQuery.parse>): LogFilter {
  if (q.from && q.to && q.from >= q.to)
    throw badRequest('from must be before to').because(OBSERVE_REASONS.badTimeRange);
  return {
    ...(q.project_id ? { projectId: q.project_id } : {}),
    ...(q.session_id ? { sessionId: q.session_id } : {}),
    ...(q.trace_id ? { traceId: q.trace_id } : {}),
    ...(q.service !== undefined ? { service: q.service } : {}),
    ...(q.level ? { minLevel: q.level } : {}),
    ...(q.from ? { from: q.from } : {}),
    ...(q.to ? { to: q.to } : {}),
    ...(q.q ? { q: q.q } : {}),
    attributes: attributePairs(q.attr),
  };
}

function ingestRoute(signal: Signal, service: ObserveService, limits: BodyLimits): AnyRouteDef {
  return route({
    method: 'POST',
    url: `/v1/${signal}`,
    summary: `OTLP/HTTP export of ${signal} (protobuf or JSON, gzip allowed)`,
    tags: ['observe'],
    // observe:write is checked per record's project (a project-restricted token writes its own).
    access: 'authenticated',
    raw: true,
    streamBody: true,
    reasons: INGEST_REASONS,
    produces: {
      contentType: 'application/x-protobuf',
      description: `the OTLP Export${signal === 'traces' ? 'Trace' : signal === 'logs' ? 'Logs' : 'Metrics'}ServiceResponse in the request's encoding, with partial_success counting rejected records`,
    },
    handler: async (ctx) => {
      const principal = ctx.principal;
      if (!principal) throw unauthorized();
      const encoding = encodingOf(requestBodyType(ctx.req));
      const stream = ctx.req.body as Readable | undefined;
      const body =
        stream && typeof stream.pipe === 'function'
          ? await readBody(stream, ctx.req.headers['content-encoding'], limits)
          : Buffer.alloc(0);
      const response = await exportTelemetry(service.ingest, signal, encoding, body, {
        principal,
        can: ctx.can,
      });
      return ctx.reply
        .code(200)
        .type(encoding === 'json' ? 'application/json' : 'application/x-protobuf')
        .send(response);
    },
  });
}

export function observeRoutes(service: ObserveService, limits: BodyLimits): AnyRouteDef[] {
  return [
    ...(['traces', 'logs', 'metrics'] as const).map((s) => ingestRoute(s, service, limits)),
    route({
      method: 'GET',
      url: '/api/observe/logs',
      summary: 'Search log entries (newest first)',
      tags: ['observe'],
      access: 'authenticated',
      query: logsQuery,
      response: logPage,
      reasons: [OBSERVE_REASONS.badTimeRange, QUERY_REASONS.invalidQuery],
      handler: async (ctx) => {
        await authorizeRead(ctx, ctx.query.project_id);
        return service.searchLogs(
          logFilterOf(ctx.query),
          { limit: ctx.query.limit, cursor: ctx.query.cursor },
          ctx.query.query,
        );
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/logs/summary',
      summary: 'Counts of the matching log entries by level and by service, without the rows',
      tags: ['observe'],
      access: 'authenticated',
      query: logFilterQuery,
      response: logSummary,
      reasons: [OBSERVE_REASONS.badTimeRange, QUERY_REASONS.invalidQuery],
      handler: async (ctx) => {
        await authorizeRead(ctx, ctx.query.project_id);
        return service.summarizeLogs(logFilterOf(ctx.query), ctx.query.query);
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/traces',
      summary: 'Trace summaries (newest first)',
      tags: ['observe'],
      access: 'authenticated',
      query: tracesQuery,
      response: tracePage,
      handler: async (ctx) => {
        const q = ctx.query;
        await authorizeRead(ctx, q.project_id);
        return service.listTraces(
          {
            ...(q.project_id ? { projectId: q.project_id } : {}),
            ...(q.service ? { service: q.service } : {}),
            ...(q.session_id ? { sessionId: q.session_id } : {}),
            ...(q.from ? { from: q.from } : {}),
            ...(q.to ? { to: q.to } : {}),
            ...(q.min_duration_ms !== undefined ? { minDurationMs: q.min_duration_ms } : {}),
            ...(q.errors === 'true' ? { errorsOnly: true } : {}),
          },
          { limit: q.limit, cursor: q.cursor },
        );
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/traces/:traceId',
      summary: 'One trace: its spans as a tree with timings (waterfall) and its log entries',
      tags: ['observe'],
      access: 'authenticated',
      params: traceParams,
      response: traceView,
      reasons: [OBSERVE_REASONS.traceNotFound],
      handler: async (ctx) => {
        // Only the spans and logs of projects the caller may read; none → not found (not "forbidden":
        // that would tell that some project holds a trace of this id).
        const trace = await service.getTrace(ctx.params.traceId, (projectId) =>
          ctx.can('observe:read', projectId),
        );
        if (!trace) throw notFound('trace').because(OBSERVE_REASONS.traceNotFound);
        return trace;
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/metrics/names',
      summary: 'Metric names with their type, unit and label values',
      tags: ['observe'],
      access: 'authenticated',
      query: metricNamesQuery,
      response: metricNames,
      handler: async (ctx) => {
        await authorizeRead(ctx, ctx.query.project_id);
        return { items: await service.metricNames(ctx.query.project_id) };
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/metrics',
      summary:
        'A metric over time: label matchers, step, aggregation (avg/sum/min/max/count/rate, histogram p50–p99), group by labels',
      tags: ['observe'],
      access: 'authenticated',
      query: metricQuery,
      response: metricResult,
      reasons: [OBSERVE_REASONS.badTimeRange, OBSERVE_REASONS.unknownMetric],
      handler: async (ctx) => {
        const q = ctx.query;
        await authorizeRead(ctx, q.project_id);
        const to = q.to ?? new Date();
        if (to <= q.from || (to.getTime() - q.from.getTime()) / (q.step * 1000) > 11_000) {
          throw badRequest('the range must be positive and hold at most 11000 steps').because(
            OBSERVE_REASONS.badTimeRange,
          );
        }
        const result = await service.queryMetric({
          name: q.name,
          ...(q.project_id ? { projectId: q.project_id } : {}),
          matchers: matchers(q.match),
          from: q.from,
          to,
          stepSeconds: q.step,
          agg: q.agg,
          groupBy: q.group_by ?? [],
        });
        if (!result) throw notFound('metric').because(OBSERVE_REASONS.unknownMetric);
        return result;
      },
    }),
    route({
      method: 'GET',
      url: '/api/observe/sessions/:sid/timeline',
      summary: "A session's logs, spans and agent events merged by time (oldest first)",
      tags: ['observe'],
      access: 'authenticated',
      params: sessionParams,
      query: timelineQuery,
      response: timeline,
      handler: async (ctx) => {
        const project = await service.sessionProject(ctx.params.sid);
        await authorizeRead(ctx, project ?? null);
        return service.sessionTimeline(ctx.params.sid, project ?? null, ctx.query.cursor, ctx.query.limit);
      },
    }),
  ];
}
