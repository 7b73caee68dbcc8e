import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OTLP_TYPES } from '../src/observe/proto/otlp.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { eventually } from './helpers/wait.js';

/** An OTLP/JSON logs export request: one resource, `n` records with the given bodies. */
function jsonLogs(bodies: string[], resource: Record<string, string> = {}, extra: object = {}) {
  return {
    resourceLogs: [
      {
        resource: {
          attributes: Object.entries({ 'service.name': 'ingest-test', ...resource }).map(([key, v]) => ({
            key,
            value: { stringValue: v },
          })),
        },
        scopeLogs: [
          {
            logRecords: bodies.map((b, i) => ({
              timeUnixNano: String(BigInt(Date.now() - 1000 + i) * 1_000_000n + 123_456n),
              severityNumber: 17,
              body: { stringValue: b },
              ...extra,
            })),
          },
        ],
      },
    ],
  };
}

describe.skipIf(servicesMissing)('observe ingest: bad input, partial success, backpressure', () => {
  let t: TestPlatform;
  let projectA: string;
  let projectB: string;

  beforeAll(async () => {
    t = await createTestPlatform({
      config: {
        PLATFORM_BODY_LIMIT_BYTES: String(64 * 1024),
        PLATFORM_OBSERVE_BUFFER_RECORDS: '10',
        PLATFORM_OBSERVE_FLUSH_MS: '1500',
      },
    });
    projectA = (await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'alpha' } }))
      .body.id;
    projectB = (await t.request('POST', '/api/projects', { token: t.adminToken, body: { name: 'beta' } }))
      .body.id;
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });
  // The logs buffer holds 10 records here, and the platform's own lines ("request rejected") use it
  // too: each test starts with it flushed.
  beforeEach(async () => {
    await eventually(
      () => t.platform.services.observe.ingest.buffers.logs.size === 0,
      10_000,
      'an empty buffer',
    );
  });

  const count = async () =>
    // The platform's own log lines (service `platform`: "request rejected") are log entries too.
    (
      await sql<{
        n: number;
      }>`select count(*)::int as n from log_entries where service <> 'platform'`.execute(
        t.platform.drivers.db.db,
      )
    ).rows[0]!.n;

  const post = (
    signal: string,
    payload: string | Buffer,
    headers: Record<string, string>,
    token = t.adminToken,
  ) =>
    t.platform.fastify.inject({
      method: 'POST',
      url: `/v1/${signal}`,
      payload,
      headers: { authorization: `Bearer ${token}`, ...headers },
    });

  it('refuses malformed, mislabelled, oversized and truncated bodies with a reason, storing nothing', async () => {
    const before = await count();
    const good = JSON.stringify(jsonLogs(['fine']));
    const cases: {
      name: string;
      payload: string | Buffer;
      headers: Record<string, string>;
      status: number;
      reason: string;
    }[] = [
      {
        name: 'malformed protobuf',
        payload: Buffer.from([0x0a, 0xff, 0xff, 0x01, 0x02]),
        headers: { 'content-type': 'application/x-protobuf' },
        status: 400,
        reason: 'observe.malformed_protobuf',
      },
      {
        name: 'malformed JSON',
        payload: '{"resourceLogs": [',
        headers: { 'content-type': 'application/json' },
        status: 400,
        reason: 'observe.malformed_json',
      },
      {
        name: 'JSON of the wrong shape',
        payload: '{"resourceLogs": "everything"}',
        headers: { 'content-type': 'application/json' },
        status: 400,
        reason: 'observe.malformed_json',
      },
      {
        name: 'a trace id that is not hex',
        payload: JSON.stringify(jsonLogs(['x'], {}, { traceId: 'zz' })),
        headers: { 'content-type': 'application/json' },
        status: 400,
        reason: 'observe.malformed_json',
      },
      {
        name: 'wrong content type',
        payload: good,
        headers: { 'content-type': 'text/plain' },
        status: 415,
        reason: 'observe.unsupported_content_type',
      },
      {
        name: 'unknown content encoding',
        payload: good,
        headers: { 'content-type': 'application/json', 'content-encoding': 'br' },
        status: 415,
        reason: 'observe.unsupported_encoding',
      },
      {
        name: 'oversized body',
        payload: JSON.stringify(jsonLogs(['y'.repeat(70 * 1024)])),
        headers: { 'content-type': 'application/json' },
        status: 413,
        reason: 'observe.body_too_large',
      },
      {
        name: 'a gzip bomb (small on the wire, too large decompressed)',
        payload: gzipSync(Buffer.from(JSON.stringify(jsonLogs(['z'.repeat(400 * 1024)])))),
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        status: 413,
        reason: 'observe.body_too_large',
      },
      {
        name: 'truncated gzip',
        payload: gzipSync(Buffer.from(good)).subarray(0, 20),
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        status: 400,
        reason: 'observe.bad_gzip',
      },
    ];
    for (const c of cases) {
      const res = await post('logs', c.payload, c.headers);
      expect(res.statusCode, `${c.name}: ${res.body}`).toBe(c.status);
      expect(res.json().error.reason, c.name).toBe(c.reason);
    }
    const anonymous = await t.platform.fastify.inject({
      method: 'POST',
      url: '/v1/logs',
      payload: good,
      headers: { 'content-type': 'application/json' },
    });
    expect(anonymous.statusCode).toBe(401);
    expect(await count()).toBe(before);
  });

  it('answers partial_success for rejected records, in the request encoding', async () => {
    const payload = jsonLogs(['kept one', 'kept two']);
    // A third record with a 3-byte trace id is rejected; the others are stored.
    payload.resourceLogs[0]!.scopeLogs[0]!.logRecords.push({
      ...payload.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!,
      body: { stringValue: 'dropped' },
      traceId: 'abcdef',
    } as never);
    const res = await post('logs', JSON.stringify(payload), { 'content-type': 'application/json' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ partialSuccess: { rejectedLogRecords: '1' } });

    const type = OTLP_TYPES.logs.request;
    const proto = Buffer.from(
      type
        .encode(type.fromObject(jsonLogs(['proto kept'], { 'platform.project_id': 'not-a-uuid' })))
        .finish(),
    );
    const protoRes = await post('logs', gzipSync(proto), {
      'content-type': 'application/x-protobuf',
      'content-encoding': 'gzip',
    });
    expect(protoRes.statusCode).toBe(200);
    expect(protoRes.headers['content-type']).toContain('application/x-protobuf');
    const decoded = OTLP_TYPES.logs.response.toObject(OTLP_TYPES.logs.response.decode(protoRes.rawPayload), {
      longs: String,
    });
    expect(decoded.partialSuccess.rejectedLogRecords).toBe('1');
    expect(decoded.partialSuccess.errorMessage).toContain('platform.project_id');

    const logs = await t.request('GET', '/api/observe/logs?service=ingest-test&level=error&q=kept', {
      token: t.adminToken,
    });
    expect(logs.body.items.map((e: { message: string }) => e.message).sort()).toEqual([
      'kept one',
      'kept two',
    ]);
    // The record's nanosecond time keeps its microseconds.
    expect(logs.body.items[0].timestamp).toMatch(/\.\d{3}123Z$/);
  });

  it('a project-restricted token writes its own project only; other records are rejected', async () => {
    const created = await t.request('POST', '/api/tokens', {
      token: t.adminToken,
      body: { name: 'alpha-telemetry', project_id: projectA },
    });
    expect(created.status).toBe(201);
    const restricted = created.body.token as string;
    const own = await post(
      'logs',
      JSON.stringify(jsonLogs(['alpha default'])),
      { 'content-type': 'application/json' },
      restricted,
    );
    expect(own.statusCode).toBe(200);
    expect(own.json()).toEqual({});
    const other = await post(
      'logs',
      JSON.stringify(jsonLogs(['beta attempt'], { 'platform.project_id': projectB })),
      { 'content-type': 'application/json' },
      restricted,
    );
    expect(other.statusCode).toBe(403);
    expect(other.json().error.reason).toBe('observe.project_not_permitted');
    const alpha = await t.request('GET', `/api/observe/logs?project_id=${projectA}`, { token: t.adminToken });
    expect(alpha.body.items.map((e: { message: string }) => e.message)).toEqual(['alpha default']);
    const beta = await t.request('GET', `/api/observe/logs?project_id=${projectB}`, { token: t.adminToken });
    expect(beta.body.items).toEqual([]);
    // Reading is observe:read on the project: the restricted token reads alpha, not beta.
    expect(
      (await t.request('GET', `/api/observe/logs?project_id=${projectA}`, { token: restricted })).status,
    ).toBe(200);
    expect([403, 404]).toContain(
      (await t.request('GET', `/api/observe/logs?project_id=${projectB}`, { token: restricted })).status,
    );
  });

  it('a full buffer answers 429 with Retry-After; every acknowledged record is stored', async () => {
    const buffer = t.platform.services.observe.ingest.buffers.logs;
    // Earlier tests' "request rejected" lines (service platform) are flushed first.
    await eventually(() => buffer.size === 0, 10_000, 'an empty buffer');
    const first = post('logs', JSON.stringify(jsonLogs(Array.from({ length: 8 }, (_, i) => `held ${i}`))), {
      'content-type': 'application/json',
    });
    // The first request's 8 records wait for the (1.5 s) flush; the buffer holds 10.
    await eventually(() => buffer.size >= 8, 10_000, 'the first batch to be buffered');
    const second = await post('logs', JSON.stringify(jsonLogs(['a', 'b', 'c'])), {
      'content-type': 'application/json',
    });
    expect(second.statusCode).toBe(429);
    expect(second.headers['retry-after']).toBe('1');
    expect(second.json().error.reason).toBe('observe.buffer_full');
    const acked = await first;
    expect(acked.statusCode).toBe(200);
    const held = await t.request('GET', '/api/observe/logs?q=held&limit=50', { token: t.adminToken });
    expect(held.body.items).toHaveLength(8);
    const refused = await t.request('GET', '/api/observe/logs?service=ingest-test&q=c', {
      token: t.adminToken,
    });
    expect(refused.body.items.filter((e: { message: string }) => e.message === 'c')).toEqual([]);
  });

  it('pages the log search with a cursor, newest first', async () => {
    const bodies = Array.from({ length: 7 }, (_, i) => `paged ${i}`);
    expect(
      (await post('logs', JSON.stringify(jsonLogs(bodies)), { 'content-type': 'application/json' }))
        .statusCode,
    ).toBe(200);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { message: string }[]; next_cursor: string | null } } = await t.request(
        'GET',
        `/api/observe/logs?q=paged&limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        { token: t.adminToken },
      );
      seen.push(...page.body.items.map((e) => e.message));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...bodies].reverse());
    const bad = await t.request('GET', '/api/observe/logs?cursor=nonsense', { token: t.adminToken });
    expect(bad.status).toBe(400);
  });
});

describe.skipIf(servicesMissing)('observe: one place to search everything', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  it("the platform's own log lines are log entries of service platform (not the observe module's)", async () => {
    const refused = await t.request('GET', '/api/observe/traces/00000000000000000000000000000abc', {
      token: t.adminToken,
    });
    expect(refused.status).toBe(404);
    await eventually(
      async () => {
        await t.platform.settle();
        const logs = await t.request('GET', '/api/observe/logs?service=platform&q=request%20rejected', {
          token: t.adminToken,
        });
        return logs.body.items.length > 0 ? logs : undefined;
      },
      20_000,
      'the "request rejected" line as a log entry',
    );
    const copied = await sql<{ n: number }>`select count(*)::int as n from log_entries
      where service = 'platform' and attributes ->> 'module' = 'observe'`.execute(t.platform.drivers.db.db);
    expect(copied.rows[0]!.n).toBe(0);
  });
});
