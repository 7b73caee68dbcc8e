/**
 * Two platform instances ingest into one PostgreSQL at once: every acknowledged log record, span
 * and data point is stored exactly once; a trace whose spans arrive at both instances is summed
 * once per span; one metric series fed by both is one row. The live-tail feed (`observe.logs`)
 * published by either instance reaches subscribers of the other.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tailDemandChannel } from '../src/observe/ingest.js';
import {
  createTestPlatform,
  createTestStore,
  eventually,
  servicesMissing,
  type TestPlatform,
  type TestStore,
} from './helpers/app.js';

const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');

describe.skipIf(servicesMissing)('observe ingest on two instances', () => {
  let store: TestStore;
  let a: TestPlatform;
  let b: TestPlatform;
  let projectId: string;

  beforeAll(async () => {
    store = await createTestStore('postgres');
    // Small batches and a short linger: many concurrent flushes on both instances.
    const config = { PLATFORM_OBSERVE_FLUSH_MS: '5' };
    a = await createTestPlatform({ store, config });
    b = await createTestPlatform({ store, config, bare: true });
    projectId = (await a.request('POST', '/api/projects', { token: a.adminToken, body: { name: 'twins' } }))
      .body.id;
  }, 120_000);
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await store?.drop();
  });

  const post = (t: TestPlatform, signal: string, body: unknown) =>
    t.platform.fastify.inject({
      method: 'POST',
      url: `/v1/${signal}`,
      payload: JSON.stringify(body),
      headers: { authorization: `Bearer ${a.adminToken}`, 'content-type': 'application/json' },
    });

  const resource = (service: string) => ({
    attributes: [
      { key: 'service.name', value: { stringValue: service } },
      { key: 'platform.project_id', value: { stringValue: projectId } },
    ],
  });

  it('no loss, no duplicates', async () => {
    const now = Date.now();
    const fed: string[] = [];
    const unsubscribe = await b.platform.drivers.pubsub.subscribe('observe.logs', (m) => {
      for (const e of (m as { entries: { message: string }[] }).entries) fed.push(e.message);
    });
    // The ingest publishes batches only while some instance has a live tail open: this subscriber
    // announces itself as a tail does (on b; a hears it through PostgreSQL) and refreshes it.
    const announce = () => b.platform.drivers.pubsub.publish(tailDemandChannel('observe.logs'), {});
    await announce();
    const refresh = setInterval(() => void announce(), 5_000);
    await eventually(
      () => a.platform.services.observe.ingest.tailWanted && b.platform.services.observe.ingest.tailWanted,
      10_000,
      'both instances to see the tail demand',
    );
    const requests: Promise<{ statusCode: number }>[] = [];
    const REQUESTS = 40;
    for (let r = 0; r < REQUESTS; r++) {
      const t = r % 2 ? b : a;
      const ns = (i: number) => String(BigInt(now - 60_000 + r * 100 + i) * 1_000_000n);
      requests.push(
        post(t, 'logs', {
          resourceLogs: [
            {
              resource: resource('twins-logs'),
              scopeLogs: [
                {
                  logRecords: Array.from({ length: 25 }, (_, i) => ({
                    timeUnixNano: ns(i),
                    severityNumber: 9,
                    body: { stringValue: `r${r}-i${i}` },
                  })),
                },
              ],
            },
          ],
        }),
        // One trace: a root on instance a, children from every request (both instances).
        post(t, 'traces', {
          resourceSpans: [
            {
              resource: resource('twins-api'),
              scopeSpans: [
                {
                  spans: [
                    ...(r === 0
                      ? [
                          {
                            traceId: hex(1, 32),
                            spanId: hex(1, 16),
                            name: 'root',
                            startTimeUnixNano: ns(0),
                            endTimeUnixNano: ns(99_999),
                          },
                        ]
                      : []),
                    {
                      traceId: hex(1, 32),
                      spanId: hex(1000 + r, 16),
                      parentSpanId: hex(1, 16),
                      name: `child ${r}`,
                      startTimeUnixNano: ns(1),
                      endTimeUnixNano: ns(2),
                      status: { code: r % 5 === 0 ? 2 : 0 },
                    },
                  ],
                },
              ],
            },
          ],
        }),
        post(t, 'metrics', {
          resourceMetrics: [
            {
              resource: resource('twins-api'),
              scopeMetrics: [
                {
                  metrics: [
                    {
                      name: 'twins_requests_total',
                      sum: {
                        aggregationTemporality: 2,
                        isMonotonic: true,
                        dataPoints: [
                          {
                            timeUnixNano: ns(0),
                            asInt: String(r),
                            attributes: [{ key: 'route', value: { stringValue: '/x' } }],
                          },
                        ],
                      },
                    },
                  ],
                },
              ],
            },
          ],
        }),
      );
    }
    const answers = await Promise.all(requests);
    expect(answers.map((x) => x.statusCode)).toEqual(answers.map(() => 200));
    const db = a.platform.drivers.db.db;
    const logs = await sql<{
      n: number;
      d: number;
    }>`select count(*)::int as n, count(distinct message)::int as d
      from log_entries where service = 'twins-logs'`.execute(db);
    expect(logs.rows[0]).toEqual({ n: REQUESTS * 25, d: REQUESTS * 25 });
    const spans = await sql<{
      n: number;
    }>`select count(*)::int as n from spans where trace_id = ${hex(1, 32)}`.execute(db);
    expect(spans.rows[0]!.n).toBe(REQUESTS + 1);
    const trace = await db.selectFrom('traces').selectAll().where('trace_id', '=', hex(1, 32)).execute();
    expect(trace).toHaveLength(1);
    expect(trace[0]).toMatchObject({
      span_count: REQUESTS + 1,
      error_count: REQUESTS / 5,
      root_name: 'root',
      project_id: projectId,
    });
    const series = await db
      .selectFrom('metric_series')
      .select(['id'])
      .where('name', '=', 'twins_requests_total')
      .execute();
    expect(series).toHaveLength(1);
    const samples = await sql<{
      n: number;
    }>`select count(*)::int as n from metric_samples where series_id = ${series[0]!.id}`.execute(db);
    expect(samples.rows[0]!.n).toBe(REQUESTS);
    // Both instances' batches reach a subscriber of one of them.
    await eventually(
      () => fed.filter((m) => /^r\d+-i\d+$/.test(m)).length === REQUESTS * 25,
      20_000,
      'the live feed',
    );
    clearInterval(refresh);
    await unsubscribe();
  }, 120_000);
});
