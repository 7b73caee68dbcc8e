import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OtlpGrpcServer } from '../src/observe/grpc.js';
import { OTLP_TYPES } from '../src/observe/proto/otlp.js';
import { RETRY_INFO_TYPE_URL, RPC_TYPES } from '../src/observe/proto/rpc-status.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { exportRequestMetrics } from './helpers/otel-sdk.js';
import { freePort } from './helpers/process.js';
import { eventually } from './helpers/wait.js';

const PATHS = {
  traces: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
  logs: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
  metrics: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
} as const;
type Signal = keyof typeof PATHS;

const bearer = (token: string) => {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
};

const attributes = (o: Record<string, string>) =>
  Object.entries(o).map(([key, v]) => ({ key, value: { stringValue: v } }));

/** An ExportLogsServiceRequest in protobuf: one resource per entry of `resources`, one record per body. */
function logsRequest(resources: { service: string; projectId?: string; bodies: string[] }[]): Buffer {
  const type = OTLP_TYPES.logs.request;
  const message = type.fromObject({
    resourceLogs: resources.map((r) => ({
      resource: {
        attributes: attributes({
          'service.name': r.service,
          ...(r.projectId ? { 'platform.project_id': r.projectId } : {}),
        }),
      },
      scopeLogs: [
        {
          logRecords: r.bodies.map((b) => ({
            timeUnixNano: String(BigInt(Date.now()) * 1_000_000n),
            severityNumber: 9,
            body: { stringValue: b },
          })),
        },
      ],
    })),
  });
  return Buffer.from(type.encode(message).finish());
}

/** An ExportTraceServiceRequest in protobuf: `n` root spans of one service. */
function spansRequest(service: string, n: number): Buffer {
  const type = OTLP_TYPES.traces.request;
  const now = BigInt(Date.now()) * 1_000_000n;
  const message = type.fromObject({
    resourceSpans: [
      {
        resource: { attributes: attributes({ 'service.name': service }) },
        scopeSpans: [
          {
            spans: Array.from({ length: n }, (_, i) => ({
              traceId: Buffer.from(crypto.getRandomValues(new Uint8Array(16))),
              spanId: Buffer.from(crypto.getRandomValues(new Uint8Array(8))),
              name: `op ${i}`,
              kind: 2,
              startTimeUnixNano: String(now - 1_000_000n),
              endTimeUnixNano: String(now),
            })),
          },
        ],
      },
    ],
  });
  return Buffer.from(type.encode(message).finish());
}

interface RawAnswer {
  error: ServiceError | null;
  response: Buffer | undefined;
}

/** A plain grpc-js client (bytes in, bytes out): what any OTLP/gRPC exporter puts on the wire. */
function rawExport(
  client: Client,
  signal: Signal,
  body: Buffer,
  metadata = new Metadata(),
): Promise<RawAnswer> {
  const bytes = (b: Buffer) => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest(PATHS[signal], bytes, bytes, body, metadata, (error, response) =>
      resolve({ error: error ?? null, response }),
    );
  });
}

describe.skipIf(servicesMissing)('observe: OTLP/gRPC ingest', () => {
  let t: TestPlatform;
  let port: number;
  let client: Client;
  let projectId: string;
  let otherProjectId: string;

  beforeAll(async () => {
    port = await freePort();
    t = await createTestPlatform({ config: { PLATFORM_OTLP_GRPC_ADDRESS: `127.0.0.1:${port}` } });
    const shop = await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'shop' } });
    expect(shop.status).toBe(201);
    projectId = shop.body.id;
    const other = await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'other' } });
    expect(other.status).toBe(201);
    otherProjectId = other.body.id;
    client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  }, 120_000);
  afterAll(async () => {
    client?.close();
    await t?.close();
  });

  const exporterOptions = (gzip: boolean) => ({
    url: `http://127.0.0.1:${port}`,
    metadata: bearer(t.adminToken),
    ...(gzip ? { compression: 'gzip' as never } : {}),
  });

  const logMessages = async (query: string) => {
    const res = await t.request('GET', `/api/observe/logs?${query}`, { token: t.adminToken });
    expect(res.status).toBe(200);
    return res.body.items.map((e: { message: string }) => e.message).sort();
  };

  it('the SDK gRPC exporters deliver traces and logs (gzip and not), correlated', async () => {
    const service = 'checkout-grpc';
    const resource = resourceFromAttributes({ 'service.name': service, 'platform.project_id': projectId });
    const tracerProvider = new BasicTracerProvider({
      resource,
      spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter(exporterOptions(true)))],
    });
    const loggerProvider = new LoggerProvider({
      resource,
      processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter(exporterOptions(false)) })],
    });
    const tracer = tracerProvider.getTracer('test');
    const root = tracer.startSpan('GET /cart');
    const rootCtx = trace.setSpan(context.active(), root);
    const child = tracer.startSpan('db.query', { attributes: { 'db.system': 'postgresql' } }, rootCtx);
    loggerProvider.getLogger('test').emit({
      severityNumber: SeverityNumber.WARN,
      severityText: 'WARN',
      body: 'payment declined over gRPC',
      attributes: { 'order.id': 'o-42' },
      context: trace.setSpan(rootCtx, child),
    });
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock' });
    child.end();
    root.end();
    await tracerProvider.forceFlush();
    await loggerProvider.forceFlush();
    await tracerProvider.shutdown();
    await loggerProvider.shutdown();
    const traceId = root.spanContext().traceId;

    // Acknowledged means durable: queried at once.
    const logs = await t.request('GET', `/api/observe/logs?project_id=${projectId}&service=${service}`, {
      token: t.adminToken,
    });
    expect(logs.body.items).toHaveLength(1);
    expect(logs.body.items[0]).toMatchObject({
      project_id: projectId,
      service,
      level: 'warn',
      message: 'payment declined over gRPC',
      trace_id: traceId,
      span_id: child.spanContext().spanId,
      attributes: { 'order.id': 'o-42' },
    });
    const detail = await t.request('GET', `/api/observe/traces/${traceId}`, { token: t.adminToken });
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
    expect(detail.body.spans[1]).toMatchObject({
      parent_span_id: root.spanContext().spanId,
      status_code: 'error',
      status_message: 'deadlock',
      attributes: { 'db.system': 'postgresql' },
    });
    expect(detail.body.logs.map((l: { id: string }) => l.id)).toEqual([logs.body.items[0].id]);
  }, 60_000);

  it('the SDK gRPC metric exporter delivers a counter and a histogram with its buckets', async () => {
    const service = 'api-grpc';
    await exportRequestMetrics(new OTLPMetricExporter(exporterOptions(true)), {
      service,
      projectId,
      prefix: 'grpc',
      counts: { '/cart': 5, '/pay': 2 },
    });

    const names = await t.request('GET', `/api/observe/metrics/names?project_id=${projectId}`, {
      token: t.adminToken,
    });
    const byName = Object.fromEntries(names.body.items.map((n: { name: string }) => [n.name, n]));
    expect(byName.grpc_requests_total).toMatchObject({ type: 'counter' });
    expect(byName.grpc_request_duration_ms).toMatchObject({ type: 'histogram', unit: 'ms' });
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const query = (name: string, agg: string, groupBy = '') =>
      t.request(
        'GET',
        `/api/observe/metrics?project_id=${projectId}&name=${name}&match=service%3D${service}&from=${from}&step=7200&agg=${agg}${groupBy}`,
        { token: t.adminToken },
      );
    const sum = await query('grpc_requests_total', 'max', '&group_by=route');
    expect(sum.status).toBe(200);
    expect(
      Object.fromEntries(
        sum.body.series.map((s: { labels: { route: string }; points: { v: number }[] }) => [
          s.labels.route,
          s.points.map((p) => p.v),
        ]),
      ),
    ).toEqual({ '/cart': [5], '/pay': [2] });
    // Rank 5 of 10 lies in (10, 50] holding 6: 10 + 40 * 5/6; rank 9 in (100, 500]: 100 + 400 * 3/4.
    expect((await query('grpc_request_duration_ms', 'p50')).body.series[0].points[0].v).toBeCloseTo(
      10 + (40 * 5) / 6,
      6,
    );
    expect((await query('grpc_request_duration_ms', 'p90')).body.series[0].points[0].v).toBeCloseTo(400, 6);
  }, 60_000);

  it('without a token or with an invalid one: UNAUTHENTICATED, nothing stored', async () => {
    const body = logsRequest([{ service: 'anonymous-grpc', projectId, bodies: ['not stored'] }]);
    const anonymous = await rawExport(client, 'logs', body);
    expect(anonymous.error?.code).toBe(status.UNAUTHENTICATED);
    const invalid = await rawExport(client, 'logs', body, bearer('plat_api_not-a-real-token'));
    expect(invalid.error?.code).toBe(status.UNAUTHENTICATED);
    expect(invalid.error?.details).not.toContain('plat_api_not-a-real-token');
    expect(await logMessages('service=anonymous-grpc')).toEqual([]);
  });

  it('a token without observe:write: PERMISSION_DENIED, nothing stored', async () => {
    const created = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: { name: 'reader', scopes: ['observe:read'] },
    });
    expect(created.status).toBe(201);
    const answer = await rawExport(
      client,
      'logs',
      logsRequest([{ service: 'reader-grpc', projectId, bodies: ['not stored'] }]),
      bearer(created.body.token),
    );
    expect(answer.error?.code).toBe(status.PERMISSION_DENIED);
    expect(answer.error?.metadata.get('platform-error-reason')).toEqual(['observe.project_not_permitted']);
    expect(await logMessages('service=reader-grpc')).toEqual([]);
  });

  it("a project-restricted token writes its project; another project's records are rejected", async () => {
    const created = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: { name: 'shop-telemetry', project_id: projectId },
    });
    expect(created.status).toBe(201);
    const restricted = bearer(created.body.token);
    // Only the other project's records: refused as a whole, as HTTP's 403.
    const foreign = await rawExport(
      client,
      'logs',
      logsRequest([{ service: 'restricted-grpc', projectId: otherProjectId, bodies: ['foreign'] }]),
      restricted,
    );
    expect(foreign.error?.code).toBe(status.PERMISSION_DENIED);
    // Mixed: its own (defaulting to its project) are stored, the others counted in partial_success.
    const mixed = await rawExport(
      client,
      'logs',
      logsRequest([
        { service: 'restricted-grpc', bodies: ['own default', 'own second'] },
        { service: 'restricted-grpc', projectId: otherProjectId, bodies: ['foreign again'] },
      ]),
      restricted,
    );
    expect(mixed.error).toBeNull();
    const response = OTLP_TYPES.logs.response.toObject(OTLP_TYPES.logs.response.decode(mixed.response!), {
      longs: String,
    });
    expect(response.partialSuccess.rejectedLogRecords).toBe('1');
    expect(response.partialSuccess.errorMessage).toContain('observe:write');
    expect(await logMessages(`project_id=${projectId}&service=restricted-grpc`)).toEqual([
      'own default',
      'own second',
    ]);
    expect(await logMessages(`project_id=${otherProjectId}&service=restricted-grpc`)).toEqual([]);
  });

  it('a malformed payload: INVALID_ARGUMENT, nothing stored', async () => {
    const before = await spanCount(t);
    // Field 1 (resource_spans), length-delimited, claiming 127 bytes that are not there.
    const answer = await rawExport(
      client,
      'traces',
      Buffer.from([0x0a, 0x7f, 0x01, 0x02]),
      bearer(t.adminToken),
    );
    expect(answer.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(answer.error?.details).toContain('malformed OTLP protobuf');
    expect(answer.error?.metadata.get('platform-error-reason')).toEqual(['observe.malformed_protobuf']);
    expect(await spanCount(t)).toBe(before);
  });

  it('a message larger than PLATFORM_BODY_LIMIT_BYTES once gunzipped: RESOURCE_EXHAUSTED', async () => {
    // grpc-js compresses it (a few KiB on the wire); the server refuses it while decompressing.
    const gzipClient = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), {
      'grpc.default_compression_algorithm': 2,
    });
    try {
      const huge = logsRequest([
        { service: 'huge-grpc', projectId, bodies: ['x'.repeat(t.config.body_limit_bytes + 1024)] },
      ]);
      const answer = await rawExport(gzipClient, 'logs', huge, bearer(t.adminToken));
      expect(answer.error?.code).toBe(status.RESOURCE_EXHAUSTED);
      // Refused while decompressing: the message did travel gzip-compressed.
      expect(answer.error?.details).toMatch(/decompresses to a size larger than/);
      // The same request within the limit, gzip too, is stored.
      const small = await rawExport(
        gzipClient,
        'logs',
        logsRequest([{ service: 'huge-grpc', projectId, bodies: ['y'.repeat(1000)] }]),
        bearer(t.adminToken),
      );
      expect(small.error).toBeNull();
      expect(await logMessages('service=huge-grpc')).toEqual(['y'.repeat(1000)]);
    } finally {
      gzipClient.close();
    }
  });

  it('an address in use fails the start, naming the setting to change', async () => {
    const second = new OtlpGrpcServer(
      { address: `127.0.0.1:${port}`, maxMessageBytes: 1024, setting: 'PLATFORM_OTLP_GRPC_ADDRESS' },
      t.platform.services.observe.ingest,
      {
        authenticate: async () => null,
        access: { check: async () => 'denied' },
      },
      t.platform.log,
    );
    await expect(second.start()).rejects.toThrow(
      /127\.0\.0\.1:\d+ \(PLATFORM_OTLP_GRPC_ADDRESS\).*Set PLATFORM_OTLP_GRPC_ADDRESS/,
    );
  });
});

async function spanCount(t: TestPlatform): Promise<number> {
  const r = await sql<{ n: number }>`select count(*)::int as n from spans`.execute(t.platform.drivers.db.db);
  return r.rows[0]!.n;
}

describe.skipIf(servicesMissing)('observe: OTLP/gRPC backpressure', () => {
  let t: TestPlatform;
  let client: Client;

  beforeAll(async () => {
    const port = await freePort();
    t = await createTestPlatform({
      config: {
        PLATFORM_OTLP_GRPC_ADDRESS: `127.0.0.1:${port}`,
        PLATFORM_OBSERVE_BUFFER_RECORDS: '10',
        PLATFORM_OBSERVE_FLUSH_MS: '1500',
      },
    });
    client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  }, 120_000);
  afterAll(async () => {
    // Stopped with the client still connected (as exporters stay): the stop must not wait for it.
    const started = Date.now();
    await t?.close();
    client?.close();
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('a full buffer answers RESOURCE_EXHAUSTED with a RetryInfo; the acknowledged spans are stored', async () => {
    // Spans: the platform's own log lines share the logs buffer, not this one.
    const buffer = t.platform.services.observe.ingest.buffers.traces;
    const first = rawExport(client, 'traces', spansRequest('held-grpc', 8), bearer(t.adminToken));
    // Its 8 spans wait for the 1.5 s flush; the buffer holds 10.
    await eventually(() => buffer.size >= 8, 10_000, 'the first batch to be buffered');
    const second = await rawExport(client, 'traces', spansRequest('refused-grpc', 3), bearer(t.adminToken));
    expect(second.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(second.error?.metadata.get('platform-error-reason')).toEqual(['observe.buffer_full']);
    const [details] = second.error?.metadata.get('grpc-status-details-bin') ?? [];
    expect(Buffer.isBuffer(details)).toBe(true);
    const rpcStatus = RPC_TYPES.status.toObject(RPC_TYPES.status.decode(details as Buffer), {
      longs: Number,
    });
    expect(rpcStatus.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(rpcStatus.details).toHaveLength(1);
    expect(rpcStatus.details[0].typeUrl).toBe(RETRY_INFO_TYPE_URL);
    const retryInfo = RPC_TYPES.retryInfo.toObject(RPC_TYPES.retryInfo.decode(rpcStatus.details[0].value), {
      longs: Number,
    });
    expect(retryInfo).toEqual({ retryDelay: { seconds: 1 } });

    const acked = await first;
    expect(acked.error).toBeNull();
    const held = await t.request('GET', '/api/observe/traces?service=held-grpc&limit=50', {
      token: t.adminToken,
    });
    expect(held.body.items).toHaveLength(8);
    const refused = await t.request('GET', '/api/observe/traces?service=refused-grpc', {
      token: t.adminToken,
    });
    expect(refused.body.items).toEqual([]);
  }, 60_000);
});
