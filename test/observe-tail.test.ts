import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  createTestPlatform,
  eventually,
  insertProject,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';
import { type LogLine, logsBody } from './helpers/otlp.js';

interface SseClient {
  events: { event: string; data: string }[];
  close(): void;
  done: Promise<void>;
}

/** Reads a server-sent event stream with fetch, collecting every event. */
async function openSse(url: string, token: string): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
  if (res.status !== 200 || !res.body) throw new Error(`tail answered ${res.status}: ${await res.text()}`);
  const events: { event: string; data: string }[] = [];
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const done = (async () => {
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) return;
        buffer += decoder.decode(value, { stream: true });
        let at = buffer.indexOf('\n\n');
        while (at >= 0) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event) events.push({ event, data: data ?? '' });
          at = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return { events, close: () => abort.abort(), done };
}

describe.skipIf(servicesMissing)(`observe live tail (${storeMode})`, () => {
  let t: TestPlatform;
  let projectId: string;
  const tailUrl = (query: Record<string, string>) =>
    `${t.baseUrl}/api/observe/logs/tail?${new URLSearchParams(query)}`;
  const ingest = async (lines: LogLine[]) => {
    const res = await t.request('POST', '/v1/logs', {
      token: t.adminToken,
      body: logsBody(lines),
      noAuditCheck: true,
    });
    expect(res.status, res.text).toBe(200);
  };

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    projectId = await insertProject(t, { name: 'tailed' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('SSE: entries ingested after the tail opened that match the filters and the query', async () => {
    const sse = await openSse(
      tailUrl({ project_id: projectId, query: '{level>="warn", service=~"api|web"}', limit: '2' }),
      t.adminToken,
    );
    await eventually(() => sse.events.some((e) => e.event === 'ready'), 10_000, 'ready');
    await ingest([
      { message: 'info line', service: 'api', projectId, severity: 9 },
      { message: 'worker warning', service: 'worker', projectId, severity: 13 },
      { message: 'api error', service: 'api', projectId, severity: 17 },
      { message: 'other project error', service: 'api', severity: 17 },
    ]);
    await ingest([{ message: 'web warning', service: 'web', projectId, severity: 13 }]);
    const logs = await eventually(
      () => {
        const got = sse.events.filter((e) => e.event === 'log');
        return got.length >= 2 ? got : null;
      },
      10_000,
      `two entries: ${JSON.stringify(sse.events).slice(0, 500)}`,
    );
    expect(logs.map((e) => JSON.parse(e.data).message)).toEqual(['api error', 'web warning']);
    expect(JSON.parse(logs[0]!.data)).toMatchObject({
      project_id: projectId,
      level: 'error',
      service: 'api',
    });
    // limit=2: the server ends the stream after the second entry.
    await sse.done;
    expect(sse.events.at(-1)).toMatchObject({ event: 'end' });
  });

  it('WebSocket: one JSON message per entry, same filters', async () => {
    const ws = new WebSocket(tailUrl({ project_id: projectId, level: 'error' }).replace(/^http/, 'ws'), {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    const messages: { type: string; entry?: { message: string } }[] = [];
    ws.on('message', (data) => messages.push(JSON.parse(String(data))));
    await eventually(() => messages.some((m) => m.type === 'ready'), 10_000, 'ready');
    await ingest([
      { message: 'ws warn', service: 'api', projectId, severity: 13 },
      { message: 'ws error', service: 'api', projectId, severity: 17 },
    ]);
    await eventually(() => messages.some((m) => m.type === 'log'), 10_000, 'an entry');
    expect(messages.filter((m) => m.type === 'log').map((m) => m.entry?.message)).toEqual(['ws error']);
    ws.close();
  });

  it('refuses a bad query before streaming, and a caller who may not read', async () => {
    const bad = await fetch(tailUrl({ query: '{level="warn"' }), {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { details: { path: string; message: string }[] } };
    expect(body.error.details[0]).toMatchObject({
      path: 'query.query',
      message: "expected ',' or '}' at 1:14 (found end of input)",
    });
    const stranger = await t.createUser('tail-stranger');
    const denied = await fetch(tailUrl({ project_id: projectId }), {
      headers: { authorization: `Bearer ${stranger.token}` },
    });
    expect([403, 404]).toContain(denied.status);
    const ws = new WebSocket(tailUrl({ query: '{' }).replace(/^http/, 'ws'), {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    expect(status).toBe(400);
  });

  it('a client that stops reading is dropped with a close reason; ingest and the other tails go on', async () => {
    const fast = await openSse(tailUrl({ project_id: projectId, service: 'flood' }), t.adminToken);
    const slow = new WebSocket(tailUrl({ project_id: projectId, service: 'flood' }).replace(/^http/, 'ws'), {
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    let close: { code: number; reason: string } | null = null;
    slow.on('close', (code, reason) => {
      close = { code, reason: String(reason) };
    });
    await new Promise<void>((resolve) => slow.once('message', () => resolve()));
    // Stop reading: the kernel buffers fill, then the server's own buffer for this client.
    (slow as unknown as { _socket: Socket })._socket.pause();
    await eventually(() => fast.events.some((e) => e.event === 'ready'), 10_000, 'ready');

    const big = 'x'.repeat(4096);
    const batches = 12;
    const perBatch = 400;
    for (let b = 0; b < batches; b++) {
      await ingest(
        Array.from({ length: perBatch }, (_, i) => ({
          message: `${b}-${i} ${big}`,
          service: 'flood',
          projectId,
        })),
      );
    }
    const total = batches * perBatch;
    // The fast tail saw every entry: the slow one held nobody up.
    await eventually(
      () => fast.events.filter((e) => e.event === 'log').length === total,
      60_000,
      'every entry on the fast tail',
    );
    fast.close();
    (slow as unknown as { _socket: Socket })._socket.resume();
    await eventually(() => close !== null, 30_000, 'the slow client closed');
    expect(close).toMatchObject({ code: 4008 });
    expect(close!.reason).toContain('slow consumer');
    const stored = await t.platform.drivers.db.db
      .selectFrom('log_entries')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('service', '=', 'flood')
      .executeTakeFirstOrThrow();
    expect(Number(stored.n)).toBe(total);
  });
});
