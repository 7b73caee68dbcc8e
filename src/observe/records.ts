import { randomUUID } from 'node:crypto';
import type { LogLevel } from '../store/schema.js';
import { type Attributes, anyValue, dateToIso, hexId, keyValues, nanosToTime } from './attributes.js';
import type { Decoded } from './decode.js';
import { type Envelope, resolveEnvelope, type SessionDirectory } from './envelope.js';

/** A log entry as written to `log_entries` (and published on `observe.logs`). */
export interface LogRow {
  id: string;
  /** Exact UTC text, microseconds. */
  timestamp: string;
  trace_id: string | null;
  span_id: string | null;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  service: string;
  level: LogLevel;
  message: string;
  attributes: Attributes;
}

export interface SpanRow {
  id: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: string;
  status_code: 'unset' | 'ok' | 'error';
  status_message: string | null;
  service: string | null;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  start_time: string;
  end_time: string;
  duration_ms: number;
  attributes: Attributes;
  resource_attributes: Attributes;
  events: unknown[];
  links: unknown[];
}

export type MetricKind = 'gauge' | 'counter' | 'histogram' | 'summary';

export interface MetricPointRow {
  project_id: string | null;
  name: string;
  labels: Record<string, string>;
  type: MetricKind;
  unit: string;
  description: string;
  service: string | null;
  temporality: 'delta' | 'cumulative' | null;
  timestamp: string;
  value: number | null;
  count: number | null;
  sum: number | null;
  buckets: { bounds?: number[]; counts?: number[]; quantiles?: { q: number; v: number }[] } | null;
}

export interface Converted<R> {
  rows: R[];
  rejected: number;
  /** The first few rejection messages (partial_success.error_message). */
  errors: string[];
}

export interface ConvertContext {
  /** The token's project (a project-restricted token), the default project of records naming none. */
  defaultProjectId: string | null;
  sessions: SessionDirectory;
  /** Records outside [now - maxAgeMs, now + maxFutureMs] are rejected (no partition per stray day). */
  maxAgeMs: number;
  maxFutureMs: number;
  now: number;
}

const MAX_MESSAGE_CHARS = 64 * 1024;
const SPAN_KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUS_CODES = ['unset', 'ok', 'error'] as const;

class Rejections {
  count = 0;
  errors: string[] = [];
  add(message: string, n = 1): void {
    this.count += n;
    if (this.errors.length < 5 && !this.errors.includes(message)) this.errors.push(message);
  }
}

/** OTLP severity_number ranges (1-4 trace … 21-24 fatal), else the severity text, else info. */
export function levelOf(severityNumber: number | undefined, severityText: string | undefined): LogLevel {
  const n = severityNumber ?? 0;
  if (n >= 1 && n <= 24)
    return (['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const)[
      Math.floor((n - 1) / 4)
    ] as LogLevel;
  const text = (severityText ?? '').toLowerCase();
  if (text.startsWith('trace')) return 'trace';
  if (text.startsWith('debug')) return 'debug';
  if (text.startsWith('warn')) return 'warn';
  if (text.startsWith('err')) return 'error';
  if (
    text.startsWith('fatal') ||
    text.startsWith('crit') ||
    text.startsWith('emerg') ||
    text.startsWith('alert')
  )
    return 'fatal';
  return 'info';
}

function hasPlatformKeys(attrs: Attributes): boolean {
  for (const key in attrs) if (key.startsWith('platform.') || key === 'service.name') return true;
  return false;
}

/** The envelope of each resource, and of records that override platform.* keys. */
class EnvelopeResolver {
  private readonly cache = new Map<string, Promise<{ projectId: string; userId: string } | null>>();
  constructor(private readonly ctx: ConvertContext) {}
  resolve(attrs: Attributes): Promise<Envelope | string> {
    return resolveEnvelope(attrs, { projectId: this.ctx.defaultProjectId }, this.ctx.sessions, this.cache);
  }
}

function inWindow(ctx: ConvertContext, nanos: bigint): boolean {
  const ms = Number(nanos / 1_000_000n);
  return ms >= ctx.now - ctx.maxAgeMs && ms <= ctx.now + ctx.maxFutureMs;
}

function bodyText(body: Decoded | undefined): string {
  if (!body) return '';
  const v = anyValue(body);
  const text = typeof v === 'string' ? v : v === null ? '' : JSON.stringify(v);
  return text.length > MAX_MESSAGE_CHARS ? text.slice(0, MAX_MESSAGE_CHARS) : text;
}

export async function convertLogs(req: Decoded, ctx: ConvertContext): Promise<Converted<LogRow>> {
  const rows: LogRow[] = [];
  const rejections = new Rejections();
  const resolver = new EnvelopeResolver(ctx);
  const nowIso = dateToIso(new Date(ctx.now));
  for (const rl of (req.resourceLogs ?? []) as Decoded[]) {
    const resourceAttrs = keyValues(rl.resource?.attributes);
    const resourceEnvelope = await resolver.resolve(resourceAttrs);
    for (const sl of (rl.scopeLogs ?? []) as Decoded[]) {
      for (const lr of (sl.logRecords ?? []) as Decoded[]) {
        const recordAttrs = keyValues(lr.attributes);
        const attrs = { ...resourceAttrs, ...recordAttrs };
        const envelope = hasPlatformKeys(recordAttrs) ? await resolver.resolve(attrs) : resourceEnvelope;
        if (typeof envelope === 'string') {
          rejections.add(envelope);
          continue;
        }
        const traceId = hexId(lr.traceId, 16);
        const spanId = hexId(lr.spanId, 8);
        if (traceId === undefined || spanId === undefined) {
          rejections.add('trace_id must be 16 bytes and span_id 8 bytes');
          continue;
        }
        const time = nanosToTime(lr.timeUnixNano) ?? nanosToTime(lr.observedTimeUnixNano);
        if (time && !inWindow(ctx, time.nanos)) {
          rejections.add('the record time is outside the accepted window');
          continue;
        }
        rows.push({
          id: randomUUID(),
          timestamp: time?.iso ?? nowIso,
          trace_id: traceId,
          span_id: spanId,
          project_id: envelope.projectId,
          session_id: envelope.sessionId,
          user_id: envelope.userId,
          service: envelope.service,
          level: levelOf(lr.severityNumber, lr.severityText),
          message: bodyText(lr.body),
          attributes: attrs,
        });
      }
    }
  }
  return { rows, rejected: rejections.count, errors: rejections.errors };
}

export async function convertSpans(req: Decoded, ctx: ConvertContext): Promise<Converted<SpanRow>> {
  const rows: SpanRow[] = [];
  const rejections = new Rejections();
  const resolver = new EnvelopeResolver(ctx);
  for (const rs of (req.resourceSpans ?? []) as Decoded[]) {
    const resourceAttrs = keyValues(rs.resource?.attributes);
    const resourceEnvelope = await resolver.resolve(resourceAttrs);
    for (const ss of (rs.scopeSpans ?? []) as Decoded[]) {
      for (const span of (ss.spans ?? []) as Decoded[]) {
        const attrs = keyValues(span.attributes);
        const envelope = hasPlatformKeys(attrs)
          ? await resolver.resolve({ ...resourceAttrs, ...attrs })
          : resourceEnvelope;
        if (typeof envelope === 'string') {
          rejections.add(envelope);
          continue;
        }
        const traceId = hexId(span.traceId, 16);
        const spanId = hexId(span.spanId, 8);
        const parent = hexId(span.parentSpanId, 8);
        if (!traceId || !spanId || parent === undefined) {
          rejections.add('a span needs a 16-byte trace_id and an 8-byte span_id');
          continue;
        }
        const start = nanosToTime(span.startTimeUnixNano);
        const end = nanosToTime(span.endTimeUnixNano) ?? start;
        if (!start || !end || end.nanos < start.nanos || !inWindow(ctx, start.nanos)) {
          rejections.add('the span times are missing, reversed or outside the accepted window');
          continue;
        }
        const statusCode = STATUS_CODES[Number(span.status?.code ?? 0)] ?? 'unset';
        rows.push({
          id: randomUUID(),
          trace_id: traceId,
          span_id: spanId,
          parent_span_id: parent,
          name: String(span.name ?? '').slice(0, 1000) || '(unnamed)',
          kind: SPAN_KINDS[Number(span.kind ?? 0)] ?? 'unspecified',
          status_code: statusCode,
          status_message: span.status?.message ? String(span.status.message) : null,
          service: envelope.service || null,
          project_id: envelope.projectId,
          session_id: envelope.sessionId,
          user_id: envelope.userId,
          start_time: start.iso,
          end_time: end.iso,
          duration_ms: Number(end.nanos - start.nanos) / 1e6,
          attributes: attrs,
          resource_attributes: resourceAttrs,
          events: ((span.events ?? []) as Decoded[]).map((e) => ({
            name: String(e.name ?? ''),
            time: nanosToTime(e.timeUnixNano)?.iso ?? start.iso,
            attributes: keyValues(e.attributes),
          })),
          links: ((span.links ?? []) as Decoded[]).map((l) => ({
            trace_id: hexId(l.traceId, 16) ?? null,
            span_id: hexId(l.spanId, 8) ?? null,
            attributes: keyValues(l.attributes),
          })),
        });
      }
    }
  }
  return { rows, rejected: rejections.count, errors: rejections.errors };
}

function labelsOf(attrs: Attributes, service: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) labels[k] = typeof v === 'string' ? v : JSON.stringify(v);
  if (service && labels.service === undefined) labels.service = service;
  return labels;
}

const num = (v: unknown): number | null => (v === undefined || v === null ? null : Number(v));

/** Exponential buckets as explicit ones: upper bounds base^(offset+i+1); zero and negative buckets first. */
function exponentialBuckets(dp: Decoded): { bounds: number[]; counts: number[] } {
  const base = 2 ** (2 ** -Number(dp.scale ?? 0));
  const offset = Number(dp.positive?.offset ?? 0);
  const positive = ((dp.positive?.bucketCounts ?? []) as string[]).map(Number);
  const negative = ((dp.negative?.bucketCounts ?? []) as string[]).map(Number).reduce((a, b) => a + b, 0);
  const bounds = [0, ...positive.map((_, i) => base ** (offset + i + 1))];
  return { bounds, counts: [Number(dp.zeroCount ?? 0) + negative, ...positive, 0] };
}

export async function convertMetrics(req: Decoded, ctx: ConvertContext): Promise<Converted<MetricPointRow>> {
  const rows: MetricPointRow[] = [];
  const rejections = new Rejections();
  const resolver = new EnvelopeResolver(ctx);
  for (const rm of (req.resourceMetrics ?? []) as Decoded[]) {
    const resourceAttrs = keyValues(rm.resource?.attributes);
    const envelope = await resolver.resolve(resourceAttrs);
    for (const sm of (rm.scopeMetrics ?? []) as Decoded[]) {
      for (const metric of (sm.metrics ?? []) as Decoded[]) {
        const name = String(metric.name ?? '');
        const kind: [MetricKind, Decoded[], number | undefined] | null = metric.gauge
          ? ['gauge', metric.gauge.dataPoints ?? [], undefined]
          : metric.sum
            ? [
                metric.sum.isMonotonic ? 'counter' : 'gauge',
                metric.sum.dataPoints ?? [],
                metric.sum.aggregationTemporality,
              ]
            : metric.histogram
              ? ['histogram', metric.histogram.dataPoints ?? [], metric.histogram.aggregationTemporality]
              : metric.exponentialHistogram
                ? [
                    'histogram',
                    metric.exponentialHistogram.dataPoints ?? [],
                    metric.exponentialHistogram.aggregationTemporality,
                  ]
                : metric.summary
                  ? ['summary', metric.summary.dataPoints ?? [], 2]
                  : null;
        if (!kind) continue;
        const [type, points, temporalityNumber] = kind;
        if (typeof envelope === 'string' || name === '' || name.length > 255) {
          rejections.add(
            typeof envelope === 'string' ? envelope : 'a metric needs a name (at most 255 characters)',
            points.length,
          );
          continue;
        }
        const temporality = temporalityNumber === 1 ? 'delta' : temporalityNumber === 2 ? 'cumulative' : null;
        for (const dp of points) {
          const time = nanosToTime(dp.timeUnixNano);
          if (!time || !inWindow(ctx, time.nanos)) {
            rejections.add('the data point time is missing or outside the accepted window');
            continue;
          }
          const row: MetricPointRow = {
            project_id: envelope.projectId,
            name,
            labels: labelsOf(keyValues(dp.attributes), envelope.service),
            type,
            unit: String(metric.unit ?? ''),
            description: String(metric.description ?? ''),
            service: envelope.service || null,
            temporality,
            timestamp: time.iso,
            value: null,
            count: null,
            sum: null,
            buckets: null,
          };
          if (type === 'gauge' || type === 'counter') {
            row.value = dp.asDouble !== undefined ? Number(dp.asDouble) : num(dp.asInt);
          } else if (type === 'histogram') {
            row.count = num(dp.count);
            row.sum = num(dp.sum);
            row.value = row.sum;
            row.buckets = metric.exponentialHistogram
              ? exponentialBuckets(dp)
              : {
                  bounds: ((dp.explicitBounds ?? []) as number[]).map(Number),
                  counts: ((dp.bucketCounts ?? []) as string[]).map(Number),
                };
          } else {
            row.count = num(dp.count);
            row.sum = num(dp.sum);
            row.value = row.sum;
            row.buckets = {
              quantiles: ((dp.quantileValues ?? []) as Decoded[]).map((q) => ({
                q: Number(q.quantile ?? 0),
                v: Number(q.value ?? 0),
              })),
            };
          }
          rows.push(row);
        }
      }
    }
  }
  return { rows, rejected: rejections.count, errors: rejections.errors };
}
