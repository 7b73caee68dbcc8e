import { z } from 'zod';
import { paginationQuery } from '../core/http.js';
import { logLevels } from '../store/schema.js';

/** The aggregations of a metric query (histogram quantiles from buckets). */
export const METRIC_AGGREGATIONS = [
  'avg',
  'sum',
  'min',
  'max',
  'count',
  'rate',
  'p50',
  'p90',
  'p95',
  'p99',
] as const;
export type MetricAggregation = (typeof METRIC_AGGREGATIONS)[number];

const timestamp = z.string().describe('ISO 8601, UTC, microseconds');
const time = z.iso.datetime({ offset: true }).transform((s) => new Date(s));
const hex32 = z.string().regex(/^[0-9a-f]{32}$/, 'a trace id is 32 lower-case hex characters');
const many = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .pipe(z.array(z.string().max(500)).max(20));

export const logView = z
  .object({
    id: z.uuid(),
    timestamp,
    trace_id: z.string().nullable(),
    span_id: z.string().nullable(),
    project_id: z.uuid().nullable(),
    session_id: z.uuid().nullable(),
    user_id: z.uuid().nullable(),
    service: z.string(),
    level: z.enum(logLevels),
    message: z.string(),
    attributes: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'LogEntry' });

export const logFilterQuery = z.object({
  project_id: z.uuid().optional(),
  session_id: z.uuid().optional(),
  trace_id: hex32.optional(),
  service: z.string().max(200).optional(),
  level: z.enum(logLevels).optional().describe('level ≥ this one'),
  from: time.optional(),
  to: time.optional(),
  q: z.string().min(1).max(200).optional().describe('case-insensitive substring of the message'),
  attr: many.optional().describe('attribute filter `key=value` (repeatable; all must match)'),
  query: z
    .string()
    .max(4000)
    .optional()
    .describe(
      'a filter in the observe query language (docs/observe-query.md), e.g. `{level>="warn", service=~"api|web"}`',
    ),
});
export const logsQuery = logFilterQuery.extend(paginationQuery.shape);

export const logPage = z
  .object({ items: z.array(logView), next_cursor: z.string().nullable() })
  .meta({ id: 'LogPage' });

export const logSummary = z
  .object({
    total: z.number().int(),
    by_level: z.record(z.enum(logLevels), z.number().int()),
    by_service: z.array(z.object({ service: z.string(), count: z.number().int() })),
  })
  .meta({ id: 'LogSummary' });

export const tracesQuery = z
  .object({
    project_id: z.uuid().optional(),
    session_id: z.uuid().optional(),
    service: z.string().max(200).optional(),
    from: time.optional(),
    to: time.optional(),
    min_duration_ms: z.coerce.number().min(0).optional(),
    errors: z.enum(['true', 'false']).optional().describe('only traces with an error span'),
  })
  .extend(paginationQuery.shape);

export const traceSummary = z
  .object({
    trace_id: z.string(),
    project_id: z.uuid().nullable(),
    session_id: z.uuid().nullable(),
    user_id: z.uuid().nullable(),
    root_service: z.string().nullable(),
    root_name: z.string().nullable(),
    start_time: timestamp,
    end_time: timestamp,
    duration_ms: z.number(),
    span_count: z.number().int(),
    error_count: z.number().int(),
  })
  .meta({ id: 'TraceSummary' });

export const tracePage = z
  .object({ items: z.array(traceSummary), next_cursor: z.string().nullable() })
  .meta({ id: 'TracePage' });

export const spanView = z
  .object({
    span_id: z.string(),
    parent_span_id: z.string().nullable(),
    name: z.string(),
    kind: z.string(),
    service: z.string().nullable(),
    status_code: z.string(),
    status_message: z.string().nullable(),
    start_time: timestamp,
    end_time: timestamp,
    duration_ms: z.number(),
    offset_ms: z.number(),
    depth: z.number().int(),
    attributes: z.record(z.string(), z.unknown()),
    events: z.array(z.unknown()),
    links: z.array(z.unknown()),
  })
  .meta({ id: 'Span' });
/** A span in a trace view; `SpanFields` is what a span row holds of it (without its place in the tree). */
export type SpanView = z.infer<typeof spanView>;
export type SpanFields = Omit<SpanView, 'offset_ms' | 'depth'>;

export const traceView = z
  .object({
    trace_id: z.string(),
    project_id: z.uuid().nullable(),
    session_id: z.uuid().nullable(),
    start_time: timestamp,
    end_time: timestamp,
    duration_ms: z.number(),
    span_count: z.number().int(),
    error_count: z.number().int(),
    spans: z.array(spanView).describe('depth-first, children by start time'),
    logs: z.array(logView).describe('the newest 200 log entries of the trace'),
  })
  .meta({ id: 'Trace' });

export const traceParams = z.object({ traceId: hex32 });

export const metricNamesQuery = z.object({ project_id: z.uuid().optional() });
export const metricNames = z
  .object({
    items: z.array(
      z.object({
        name: z.string(),
        type: z.string(),
        unit: z.string(),
        description: z.string(),
        series_count: z.number().int(),
        labels: z.record(z.string(), z.array(z.string())),
      }),
    ),
  })
  .meta({ id: 'MetricNames' });

export const metricQuery = z.object({
  name: z.string().min(1).max(255),
  project_id: z.uuid().optional(),
  match: many
    .optional()
    .describe('label matcher `key=value`, `key!=value`, `key=~regex`, `key!~regex` (repeatable)'),
  from: time,
  to: time.optional(),
  step: z.coerce.number().int().min(1).max(86_400).default(60).describe('seconds'),
  agg: z.enum(METRIC_AGGREGATIONS).default('avg'),
  group_by: many.optional(),
});

export const metricResult = z
  .object({
    name: z.string(),
    type: z.string(),
    unit: z.string(),
    aggregation: z.enum(METRIC_AGGREGATIONS),
    step_seconds: z.number().int(),
    series: z.array(
      z.object({
        labels: z.record(z.string(), z.string()),
        points: z.array(z.object({ t: timestamp, v: z.number() })),
      }),
    ),
  })
  .meta({ id: 'MetricResult' });

export const sessionParams = z.object({ sid: z.uuid() });
export const timelineQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(200),
  cursor: z.iso.datetime({ offset: true }).optional().describe('the next_cursor of the previous page'),
});
export const timeline = z
  .object({
    items: z.array(
      z.object({
        kind: z.enum(['log', 'span', 'agent_event']),
        time: timestamp,
        id: z.string(),
        title: z.string(),
        service: z.string().nullable(),
        level: z.string().nullable(),
        duration_ms: z.number().nullable(),
        detail: z.record(z.string(), z.unknown()),
      }),
    ),
    next_cursor: z.string().nullable(),
  })
  .meta({ id: 'SessionTimeline' });
