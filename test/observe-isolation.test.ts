/**
 * A trace id or a session id is not a secret: a service passes its traceparent to the services it
 * calls, and anyone may write records naming any ids into a project they may write. So a trace (or
 * a telemetry-only session) can hold records of several projects, and its view must show each
 * reader only the records of the projects they may read — not everything behind an id they know.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, insertProject, servicesMissing, type TestPlatform } from './helpers/app.js';

const attrs = (o: Record<string, string>) =>
  Object.entries(o).map(([key, v]) => ({ key, value: { stringValue: v } }));
const nanos = (ms: number) => String(BigInt(ms) * 1_000_000n);

describe.skipIf(servicesMissing)('observe: a trace or session shared by two projects', () => {
  let t: TestPlatform;
  const users: Record<'alice' | 'bob', { token: string; projectId: string }> = {} as never;
  const traceId = randomBytes(16).toString('hex');
  const sessionId = randomUUID();

  /** `who` writes, into their own project: spans and log lines of the shared trace and session. */
  async function write(who: 'alice' | 'bob', spans: number) {
    const { token, projectId } = users[who];
    const resource = {
      attributes: attrs({
        'service.name': `${who}-svc`,
        'platform.project_id': projectId,
        'platform.session_id': sessionId,
      }),
    };
    const now = Date.now();
    const traces = await t.request('POST', '/v1/traces', {
      token,
      noAuditCheck: true,
      body: {
        resourceSpans: [
          {
            resource,
            scopeSpans: [
              {
                spans: Array.from({ length: spans }, (_, i) => ({
                  traceId,
                  spanId: randomBytes(8).toString('hex'),
                  name: `${who} op ${i}`,
                  startTimeUnixNano: nanos(now + i),
                  endTimeUnixNano: nanos(now + i + 5),
                })),
              },
            ],
          },
        ],
      },
    });
    expect(traces.status, traces.text).toBe(200);
    const logs = await t.request('POST', '/v1/logs', {
      token,
      noAuditCheck: true,
      body: {
        resourceLogs: [
          {
            resource,
            scopeLogs: [
              {
                logRecords: [
                  {
                    timeUnixNano: nanos(now),
                    traceId,
                    severityNumber: 9,
                    body: { stringValue: `${who} says hi` },
                  },
                ],
              },
            ],
          },
        ],
      },
    });
    expect(logs.status, logs.text).toBe(200);
  }

  beforeAll(async () => {
    t = await createTestPlatform();
    for (const who of ['alice', 'bob'] as const) {
      const user = await t.createUser(who, []);
      const projectId = await insertProject(t, { name: `${who}-project` });
      // ops: observe:read and observe:write on that project only.
      const member = await t.request('POST', `/api/projects/${projectId}/members`, {
        token: t.adminToken,
        body: { user_id: user.id, role: 'ops' },
      });
      expect(member.status, member.text).toBeLessThan(300);
      users[who] = { token: user.token, projectId };
    }
    await write('alice', 3);
    // Bob's service was called with alice's traceparent (or bob just copied the ids).
    await write('bob', 1);
    await t.platform.services.observe.flush();
  }, 120_000);
  afterAll(async () => {
    await t?.close();
  });

  it("each reader of the trace sees their own project's spans and logs, never the other's", async () => {
    for (const [who, other, spans] of [
      ['alice', 'bob', 3],
      ['bob', 'alice', 1],
    ] as const) {
      const res = await t.request('GET', `/api/observe/traces/${traceId}`, { token: users[who].token });
      expect(res.status, `${who}: ${res.text}`).toBe(200);
      const names: string[] = res.body.spans.map((s: { name: string }) => s.name);
      expect(names, who).toHaveLength(spans);
      expect(
        names.every((n) => n.startsWith(`${who} op`)),
        who,
      ).toBe(true);
      expect(res.body.span_count, who).toBe(spans);
      expect(
        res.body.logs.map((l: { message: string }) => l.message),
        who,
      ).toEqual([`${who} says hi`]);
      expect(res.text, who).not.toContain(`${other} op`);
      expect(res.body.project_id, who).toBe(users[who].projectId);
    }
    // The admin reads both projects: the whole trace.
    const all = await t.request('GET', `/api/observe/traces/${traceId}`, { token: t.adminToken });
    expect(all.body.spans).toHaveLength(4);
    expect(all.body.logs).toHaveLength(2);
  });

  it("the trace list: each project has its own summary of the shared trace, untouched by the other's spans", async () => {
    for (const [who, spans] of [
      ['alice', 3],
      ['bob', 1],
    ] as const) {
      const res = await t.request('GET', `/api/observe/traces?project_id=${users[who].projectId}`, {
        token: users[who].token,
      });
      expect(res.status, res.text).toBe(200);
      const mine = res.body.items.filter((i: { trace_id: string }) => i.trace_id === traceId);
      expect(mine, who).toHaveLength(1);
      expect(mine[0], who).toMatchObject({
        project_id: users[who].projectId,
        span_count: spans,
        root_service: `${who}-svc`,
      });
    }
  });

  it("the session timeline shows only the records of the session's project", async () => {
    let answered = 0;
    for (const [who, other] of [
      ['alice', 'bob'],
      ['bob', 'alice'],
    ] as const) {
      const res = await t.request('GET', `/api/observe/sessions/${sessionId}/timeline`, {
        token: users[who].token,
      });
      // The session belongs to one of the two projects: its reader gets the timeline, the other a refusal.
      if (res.status !== 200) {
        expect([403, 404], `${who}: ${res.text}`).toContain(res.status);
        continue;
      }
      answered += 1;
      const titles: string[] = res.body.items.map((i: { title: string }) => i.title);
      expect(titles.length, who).toBeGreaterThan(0);
      expect(
        titles.every((x) => x.startsWith(who)),
        `${who}: ${titles.join(', ')}`,
      ).toBe(true);
      expect(res.text, who).not.toContain(`${other} `);
    }
    expect(answered).toBe(1);
  });
  it("another project's spans cannot crowd a reader's out of the trace (5,000-span limit)", async () => {
    const start = Date.now() - 60_000;
    const flood = await t.request('POST', '/v1/traces', {
      token: users.bob.token,
      noAuditCheck: true,
      body: {
        resourceSpans: [
          {
            resource: {
              attributes: attrs({ 'service.name': 'bob-svc', 'platform.project_id': users.bob.projectId }),
            },
            scopeSpans: [
              {
                // Earlier than alice's spans: first in the trace's time order.
                spans: Array.from({ length: 5000 }, (_, i) => ({
                  traceId,
                  spanId: randomBytes(8).toString('hex'),
                  name: `bob flood ${i}`,
                  startTimeUnixNano: nanos(start + i),
                  endTimeUnixNano: nanos(start + i + 1),
                })),
              },
            ],
          },
        ],
      },
    });
    expect(flood.status, flood.text).toBe(200);
    await t.platform.services.observe.flush();
    const res = await t.request('GET', `/api/observe/traces/${traceId}`, { token: users.alice.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.spans.map((s: { name: string }) => s.name).sort()).toEqual([
      'alice op 0',
      'alice op 1',
      'alice op 2',
    ]);
  }, 60_000);
});
