import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  eventually,
  insertProject,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';
import { postGauges } from './helpers/otlp.js';
import { startTestSmtp, type TestSmtp } from './helpers/smtp.js';

interface Hook {
  body: { event?: string; data?: Record<string, unknown> } & Record<string, unknown>;
}

/** A webhook receiver on loopback that keeps every JSON body. */
async function startReceiver() {
  const received: Hook[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(servicesMissing)(`observe alerts (${storeMode})`, () => {
  let t: TestPlatform;
  let smtp: TestSmtp;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let owner: { id: string; token: string };
  let projectId: string;
  const db = () => t.platform.drivers.db.db;

  const rule = (id: string) =>
    db().selectFrom('alert_rules').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const events = (id: string) =>
    db().selectFrom('alert_events').selectAll().where('rule_id', '=', id).orderBy('created_at').execute();
  const notifications = (eventIds: string[]) =>
    eventIds.length === 0
      ? Promise.resolve([])
      : db().selectFrom('notifications').selectAll().where('ref_id', 'in', eventIds).execute();
  const hooksFor = (ruleId: string) =>
    receiver.received.filter((h) => JSON.stringify(h.body).includes(ruleId));
  /** Waits until the loop has evaluated the rule `n` more times (ticks are ~1 s apart). */
  const ticks = async (id: string, n: number) => {
    let seen = (await rule(id)).last_evaluated_at?.getTime() ?? 0;
    for (let i = 0; i < n; i++) {
      await eventually(
        async () => {
          const at = (await rule(id)).last_evaluated_at?.getTime() ?? 0;
          if (at > seen) {
            seen = at;
            return true;
          }
          return false;
        },
        20_000,
        'an evaluation',
      );
    }
  };
  const create = async (body: Record<string, unknown>) => {
    const res = await t.request('POST', '/api/observe/alerts', {
      token: owner.token,
      body: { project_id: projectId, ...body },
    });
    expect(res.status, res.text).toBe(201);
    return res.body as { id: string; condition: string; threshold: number | null; state: string };
  };

  beforeAll(async () => {
    smtp = await startTestSmtp();
    receiver = await startReceiver();
    t = await createTestPlatform({
      config: {
        ...smtp.config,
        PLATFORM_OUTBOUND_ALLOW_LIST: '127.0.0.1',
        PLATFORM_ALERT_EVALUATION_INTERVAL_SECONDS: '1',
      },
    });
    t.platform.services.notify.configure({
      backoffBaseMs: 50,
      backoffMaxMs: 200,
      outboundAllow: ['127.0.0.1'],
    });
    owner = await t.createUser('alert-owner');
    projectId = await insertProject(t, { name: 'alerted', ownerId: owner.id });
    const hook = await t.request('POST', `/api/projects/${projectId}/webhooks`, {
      token: owner.token,
      body: { url: receiver.url, events: ['alert'] },
    });
    expect(hook.status, hook.text).toBe(201);
    t.platform.startBackground();
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
    await receiver?.close();
  });

  it('refuses a query that does not parse, with the position, and a caller without alert:manage', async () => {
    const bad = await t.request('POST', '/api/observe/alerts', {
      token: owner.token,
      body: { project_id: projectId, name: 'broken', query: 'avg(latency{service="api"}[5m) > 3' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.reason).toBe('observe.invalid_query');
    expect(bad.body.error.message).toContain("expected ']' at 1:30");
    expect(bad.body.error.details[0]).toMatchObject({ path: 'body.query', line: 1, column: 30 });

    const stranger = await t.createUser('alert-stranger');
    const denied = await t.request('POST', '/api/observe/alerts', {
      token: stranger.token,
      body: { project_id: projectId, name: 'x', query: 'count(logs[1m]) > 1' },
    });
    expect([403, 404]).toContain(denied.status);
    expect(
      await db().selectFrom('alert_rules').select('id').where('name', 'in', ['broken', 'x']).execute(),
    ).toEqual([]);
  });

  it('fires once after for_seconds, resolves when the condition clears, notifies in-app, by e-mail and the project webhook, one event per transition', async () => {
    const r = await create({
      name: 'queue too deep',
      query: 'last(queue_depth{service="api", queue="jobs"}[1m]) > 10',
      for_seconds: 2,
      resolve_seconds: 0,
    });
    expect(r).toMatchObject({ condition: 'gt', threshold: 10, state: 'ok' });
    await postGauges(t, t.adminToken, [
      { name: 'queue_depth', value: 50, service: 'api', projectId, labels: { queue: 'jobs' } },
      // Another queue and another project's series do not count.
      {
        name: 'queue_depth',
        value: 0,
        service: 'api',
        projectId,
        labels: { queue: 'mail' },
        time: new Date(Date.now() + 1),
      },
    ]);

    const firing = await eventually(
      async () => ((await rule(r.id)).state === 'firing' ? rule(r.id) : null),
      30_000,
      'firing',
    );
    const [fired] = await events(r.id);
    expect(fired).toMatchObject({ status: 'firing', value: 50, threshold: 10, silenced: false });
    // Held for for_seconds: pending first, firing at least 2 s after the episode began.
    expect(fired!.created_at.getTime() - fired!.started_at.getTime()).toBeGreaterThanOrEqual(2000);
    expect(firing.pending_since?.getTime()).toBe(fired!.started_at.getTime());

    // Still true for more ticks: no second firing row, no second notification.
    await ticks(r.id, 2);
    expect((await events(r.id)).map((e) => e.status)).toEqual(['firing']);

    const mail = await eventually(
      () => smtp.to('alert-owner@example.test').find((m) => /Alert firing/.test(m.mail.subject ?? '')),
      20_000,
      'the firing e-mail',
    );
    expect(mail.mail.subject).toContain('queue too deep');
    const inApp = await eventually(
      async () =>
        (await notifications([fired!.id])).filter((n) => n.user_id === owner.id && n.channel === 'in_app'),
      20_000,
      'in-app',
    );
    expect(inApp).toHaveLength(1);
    const hook = await eventually(
      () => hooksFor(r.id).find((h) => JSON.stringify(h.body).includes('alert.fired')),
      20_000,
      'the webhook',
    );
    expect(JSON.stringify(hook.body)).toContain(fired!.id);

    // The condition clears: resolved, with the same episode start.
    await postGauges(t, t.adminToken, [
      { name: 'queue_depth', value: 1, service: 'api', projectId, labels: { queue: 'jobs' } },
    ]);
    await eventually(async () => (await rule(r.id)).state === 'resolved', 30_000, 'resolved');
    await ticks(r.id, 2);
    const all = await events(r.id);
    expect(all.map((e) => e.status)).toEqual(['firing', 'resolved']);
    expect(all[1]!.started_at.getTime()).toBe(all[0]!.started_at.getTime());
    await eventually(
      () => smtp.to('alert-owner@example.test').some((m) => /Alert resolved/.test(m.mail.subject ?? '')),
      20_000,
      'the resolved e-mail',
    );
    await eventually(
      () => hooksFor(r.id).some((h) => JSON.stringify(h.body).includes('alert.resolved')),
      20_000,
      'the resolved webhook',
    );
    await t.platform.settle();
    expect(
      smtp.to('alert-owner@example.test').filter((m) => (m.mail.subject ?? '').includes('queue too deep')),
    ).toHaveLength(2);
    expect(hooksFor(r.id)).toHaveLength(2);
    expect(
      (await notifications(all.map((e) => e.id))).filter(
        (n) => n.user_id === owner.id && n.channel === 'in_app',
      ),
    ).toHaveLength(2);

    const listed = await t.request('GET', `/api/observe/alerts/${r.id}/events`, { token: owner.token });
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((e: { status: string }) => e.status)).toEqual(['resolved', 'firing']);
  });

  it('absent fires when no data arrives and resolves when it does', async () => {
    const r = await create({
      name: 'worker silent',
      query: 'absent(heartbeat{service="worker"}[1m])',
      resolve_seconds: 0,
    });
    expect(r).toMatchObject({ condition: 'absent', threshold: null });
    await eventually(async () => (await rule(r.id)).state === 'firing', 30_000, 'absent firing');
    await postGauges(t, t.adminToken, [{ name: 'heartbeat', value: 1, service: 'worker', projectId }]);
    await eventually(async () => (await rule(r.id)).state === 'resolved', 30_000, 'absent resolved');
    await ticks(r.id, 1);
    expect((await events(r.id)).map((e) => e.status)).toEqual(['firing', 'resolved']);
  });

  it('a silence keeps the events and sends nothing', async () => {
    const r = await create({
      name: 'silenced one',
      query: 'last(silenced_metric[1m]) >= 1',
      resolve_seconds: 0,
    });
    const until = new Date(Date.now() + 3600_000).toISOString();
    const s = await t.request('PUT', `/api/observe/alerts/${r.id}/silence`, {
      token: owner.token,
      body: { until, comment: 'maintenance' },
    });
    expect(s.status, s.text).toBe(200);
    expect(s.body.silenced_until).toBe(until);
    const past = await t.request('PUT', `/api/observe/alerts/${r.id}/silence`, {
      token: owner.token,
      body: { until: '2020-01-01T00:00:00Z' },
    });
    expect(past.status).toBe(422);
    expect(past.body.error.reason).toBe('observe.silence_in_past');

    await postGauges(t, t.adminToken, [{ name: 'silenced_metric', value: 3, service: 'api', projectId }]);
    await eventually(async () => (await rule(r.id)).state === 'firing', 30_000, 'silenced firing');
    await postGauges(t, t.adminToken, [{ name: 'silenced_metric', value: 0, service: 'api', projectId }]);
    await eventually(async () => (await rule(r.id)).state === 'resolved', 30_000, 'silenced resolved');
    const all = await events(r.id);
    expect(all.map((e) => [e.status, e.silenced])).toEqual([
      ['firing', true],
      ['resolved', true],
    ]);
    await t.platform.settle();
    expect(await notifications(all.map((e) => e.id))).toEqual([]);
    expect(hooksFor(r.id)).toEqual([]);
    expect(smtp.received.filter((m) => (m.mail.subject ?? '').includes('silenced one'))).toEqual([]);
  });

  it('CRUD: list, change (a changed query is checked), delete; every change audited', async () => {
    const r = await create({
      name: 'crud rule',
      query: 'count(logs{level>="error"}[10m]) > 5',
      is_enabled: false,
    });
    const list = await t.request('GET', `/api/observe/alerts?project_id=${projectId}`, {
      token: owner.token,
    });
    expect(list.body.items.map((i: { id: string }) => i.id)).toContain(r.id);
    const patched = await t.request('PATCH', `/api/observe/alerts/${r.id}`, {
      token: owner.token,
      body: { query: 'rate(http_requests_total{status=~"5.."}[1m]) <= 0.5', severity: 'critical' },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ condition: 'lte', threshold: 0.5, severity: 'critical' });
    const bad = await t.request('PATCH', `/api/observe/alerts/${r.id}`, {
      token: owner.token,
      body: { query: 'avg(logs[1m]) > 1' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('avg() needs a metric');
    const audit = await db()
      .selectFrom('audit_log')
      .select('action')
      .where('resource_id', '=', r.id)
      .execute();
    expect(audit.map((a) => a.action).sort()).toEqual(['alert_rule.create', 'alert_rule.update']);
    expect((await t.request('DELETE', `/api/observe/alerts/${r.id}`, { token: owner.token })).status).toBe(
      204,
    );
    expect((await t.request('GET', `/api/observe/alerts/${r.id}`, { token: owner.token })).status).toBe(404);
  });
});
