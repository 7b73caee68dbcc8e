import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter as HttpLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPMetricExporter as HttpMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as HttpTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, type TestPlatform } from './helpers/app.js';
import { exportRequestMetrics } from './helpers/otel-sdk.js';

/**
 * The official OpenTelemetry JS SDK exporters (OTLP/protobuf and OTLP/JSON over HTTP, gzip) send
 * traces, logs and metrics to a running platform; the query API answers them with their correlation.
 */
describe('observe: OpenTelemetry SDK exporters', () => {
  let t: TestPlatform;
  let projectId: string;
  let token: string;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    const project = await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'shop' } });
    expect(project.status).toBe(201);
    projectId = project.body.id;
    token = t.adminToken;
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  const exporterOptions = (signal: string, gzip = false) => ({
    url: `${t.baseUrl}/v1/${signal}`,
    headers: { authorization: `Bearer ${token}` },
    ...(gzip ? { compression: 'gzip' as never } : {}),
  });

  for (const flavour of ['proto', 'http-json'] as const) {
    it(`traces and logs over ${flavour} arrive correlated`, async () => {
      const service = `checkout-${flavour}`;
      const resource = resourceFromAttributes({ 'service.name': service, 'platform.project_id': projectId });
      const traceExporter =
        flavour === 'proto'
          ? new ProtoTraceExporter(exporterOptions('traces'))
          : new HttpTraceExporter(exporterOptions('traces', true));
      const logExporter =
        flavour === 'proto'
          ? new ProtoLogExporter(exporterOptions('logs', true))
          : new HttpLogExporter(exporterOptions('logs'));
      const tracerProvider = new BasicTracerProvider({
        resource,
        spanProcessors: [new SimpleSpanProcessor(traceExporter)],
      });
      const loggerProvider = new LoggerProvider({
        resource,
        processors: [new SimpleLogRecordProcessor({ exporter: logExporter })],
      });
      const tracer = tracerProvider.getTracer('test');
      const logger = loggerProvider.getLogger('test');

      const root = tracer.startSpan('GET /cart');
      const rootCtx = trace.setSpan(context.active(), root);
      const child = tracer.startSpan('db.query', { attributes: { 'db.system': 'postgresql' } }, rootCtx);
      const childCtx = trace.setSpan(rootCtx, child);
      logger.emit({
        severityNumber: SeverityNumber.WARN,
        severityText: 'WARN',
        body: `payment declined ${flavour}`,
        attributes: { 'order.id': 'o-17', attempt: 2 },
        context: childCtx,
      });
      child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock' });
      child.end();
      root.end();
      await tracerProvider.forceFlush();
      await loggerProvider.forceFlush();
      await tracerProvider.shutdown();
      const traceId = root.spanContext().traceId;

      // Acknowledged means durable: no waiting needed.
      const logs = await t.request(
        'GET',
        `/api/observe/logs?project_id=${projectId}&service=${service}&level=warn`,
        { token },
      );
      expect(logs.status).toBe(200);
      expect(logs.body.items).toHaveLength(1);
      const entry = logs.body.items[0];
      expect(entry).toMatchObject({
        project_id: projectId,
        service,
        level: 'warn',
        message: `payment declined ${flavour}`,
        trace_id: traceId,
        span_id: child.spanContext().spanId,
      });
      expect(entry.attributes).toMatchObject({ 'order.id': 'o-17', attempt: 2 });

      const searched = await t.request(
        'GET',
        `/api/observe/logs?project_id=${projectId}&q=DECLINED%20${flavour}`,
        { token },
      );
      expect(searched.body.items.map((e: { id: string }) => e.id)).toEqual([entry.id]);

      const detail = await t.request('GET', `/api/observe/traces/${traceId}`, { token });
      expect(detail.status).toBe(200);
      expect(detail.body).toMatchObject({
        trace_id: traceId,
        project_id: projectId,
        span_count: 2,
        error_count: 1,
      });
      expect(detail.body.spans.map((s: { name: string; depth: number }) => [s.name, s.depth])).toEqual([
        ['GET /cart', 0],
        ['db.query', 1],
      ]);
      const dbSpan = detail.body.spans[1];
      expect(dbSpan).toMatchObject({
        parent_span_id: root.spanContext().spanId,
        status_code: 'error',
        status_message: 'deadlock',
        service,
        attributes: { 'db.system': 'postgresql' },
      });
      expect(dbSpan.offset_ms).toBeGreaterThanOrEqual(0);
      expect(detail.body.logs.map((l: { id: string }) => l.id)).toEqual([entry.id]);

      const list = await t.request('GET', `/api/observe/traces?project_id=${projectId}&service=${service}`, {
        token,
      });
      expect(list.body.items).toHaveLength(1);
      expect(list.body.items[0]).toMatchObject({
        trace_id: traceId,
        root_name: 'GET /cart',
        root_service: service,
        span_count: 2,
      });

      const summary = await t.request(
        'GET',
        `/api/observe/logs/summary?project_id=${projectId}&service=${service}`,
        { token },
      );
      expect(summary.body).toMatchObject({
        total: 1,
        by_level: { warn: 1, error: 0 },
        by_service: [{ service, count: 1 }],
      });
    }, 60_000);

    it(`metrics over ${flavour}: a counter and a histogram with its buckets`, async () => {
      const service = `api-${flavour}`;
      const exporter =
        flavour === 'proto'
          ? new ProtoMetricExporter(exporterOptions('metrics'))
          : new HttpMetricExporter(exporterOptions('metrics', true));
      await exportRequestMetrics(exporter, {
        service,
        projectId,
        prefix: 'http',
        counts: { '/cart': 3, '/pay': 4 },
      });

      const names = await t.request('GET', `/api/observe/metrics/names?project_id=${projectId}`, { token });
      const byName = Object.fromEntries(names.body.items.map((n: { name: string }) => [n.name, n]));
      expect(byName.http_requests_total).toMatchObject({ type: 'counter' });
      expect(byName.http_request_duration_ms).toMatchObject({ type: 'histogram', unit: 'ms' });
      expect(byName.http_requests_total.labels.route).toEqual(['/cart', '/pay']);

      const from = new Date(Date.now() - 3_600_000).toISOString();
      const sum = await t.request(
        'GET',
        `/api/observe/metrics?project_id=${projectId}&name=http_requests_total&match=service%3D${service}&from=${from}&step=7200&agg=max&group_by=route`,
        { token },
      );
      expect(sum.status).toBe(200);
      const byRoute = Object.fromEntries(
        sum.body.series.map((s: { labels: { route: string }; points: { v: number }[] }) => [
          s.labels.route,
          s.points.map((p) => p.v),
        ]),
      );
      expect(byRoute).toEqual({ '/cart': [3], '/pay': [4] });

      const p50 = await t.request(
        'GET',
        `/api/observe/metrics?project_id=${projectId}&name=http_request_duration_ms&match=service%3D${service}&from=${from}&step=7200&agg=p50`,
        { token },
      );
      // Rank 5 of 10 lies in (10, 50] holding 6: 10 + 40 * 5/6.
      expect(p50.body.series[0].points[0].v).toBeCloseTo(10 + (40 * 5) / 6, 6);
      const p90 = await t.request(
        'GET',
        `/api/observe/metrics?project_id=${projectId}&name=http_request_duration_ms&match=service%3D${service}&from=${from}&step=7200&agg=p90`,
        { token },
      );
      // Rank 9 lies in (100, 500] holding 4 after 6: 100 + 400 * 3/4.
      expect(p90.body.series[0].points[0].v).toBeCloseTo(400, 6);
      const avg = await t.request(
        'GET',
        `/api/observe/metrics?project_id=${projectId}&name=http_request_duration_ms&match=service%3D${service}&from=${from}&step=7200&agg=avg`,
        { token },
      );
      // The stored value of a histogram sample is its sum.
      expect(avg.body.series[0].points[0].v).toBe(6 * 30 + 4 * 200);
    }, 60_000);
  }
});
