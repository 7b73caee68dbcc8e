import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeliveryView, WEBHOOK_DELIVERY_LOOP, type WebhooksService } from '../src/webhooks/index.js';
import {
  createTestPlatform,
  eventually,
  insertProject,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The raw bytes, as the signature covers them. */
  body: Buffer;
}

/**
 * A local receiver; the path picks the behaviour: /hang/* never answers, /hold/* answers 204 once
 * `release()` was called (counting how many wait at once), /missing/* answers 404, /flaky/* answers
 * 500 twice then 200, anything else 204.
 */
async function startReceiver() {
  const received: Received[] = [];
  const flaky = new Map<string, number>();
  const held: http.ServerResponse[] = [];
  let holding = true;
  let maxHeld = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks) });
      if (path.startsWith('/hang/')) return;
      if (path.startsWith('/hold/') && holding) {
        held.push(res);
        maxHeld = Math.max(maxHeld, held.length);
        return;
      }
      if (path.startsWith('/missing/')) {
        res.writeHead(404).end('no such hook');
        return;
      }
      if (path.startsWith('/flaky/')) {
        const n = (flaky.get(path) ?? 0) + 1;
        flaky.set(path, n);
        if (n <= 2) {
          res.writeHead(500).end('boom');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    at: (path: string) => received.filter((r) => r.path === path),
    /** Answers the held requests, and later ones at once. Returns the most that waited together. */
    release: (): number => {
      holding = false;
      for (const res of held.splice(0)) res.writeHead(204).end();
      return maxHeld;
    },
    /** The requests to `path` once there are at least `count`. */
    wait: async (path: string, what: string, count = 1): Promise<Received[]> => {
      const found = await eventually(
        async () => {
          const hits = received.filter((r) => r.path === path);
          return hits.length >= count ? hits : null;
        },
        10_000,
        what,
      );
      return found!;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const sign = (secret: string, body: Buffer) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

function expectSignedBy(secret: string, r: Received): void {
  const given = Buffer.from(String(r.headers['x-platform-signature']));
  const expected = Buffer.from(sign(secret, r.body));
  expect(given.length).toBe(expected.length);
  expect(timingSafeEqual(given, expected)).toBe(true);
}

function expectStableError(res: { status: number; body: unknown }, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  const body = res.body as { error: { code: string; message: string; details: unknown[] } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(Array.isArray(body.error.details)).toBe(true);
}

describe.skipIf(servicesMissing)(`project webhooks (${storeMode})`, () => {
  let t: TestPlatform;
  let svc: WebhooksService;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let owner: { id: string; token: string };
  let dev: { id: string; token: string };
  let projectCount = 0;

  /** A fresh project of the owner, so each test sees only its own webhooks. */
  const newProject = (visibility: 'private' | 'internal' = 'internal') =>
    insertProject(t, { name: `hooks-${++projectCount}`, ownerId: owner.id, visibility });
  const hooksUrl = (projectId: string) => `/api/projects/${projectId}/webhooks`;

  async function createHook(projectId: string, body: Record<string, unknown>) {
    const res = await t.request('POST', hooksUrl(projectId), { token: owner.token, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { id: string; url: string; events: string[]; active: boolean; has_secret: boolean };
  }

  async function deliveries(projectId: string, hookId: string, query = ''): Promise<DeliveryView[]> {
    const res = await t.request('GET', `${hooksUrl(projectId)}/${hookId}/deliveries${query}`, {
      token: owner.token,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.items;
  }

  /** Polls the delivery log until `done` holds for it. */
  async function logWhen(
    projectId: string,
    hookId: string,
    done: (items: DeliveryView[]) => boolean,
    what: string,
    query = '',
    timeoutMs = 10_000,
  ): Promise<DeliveryView[]> {
    const found = await eventually(
      async () => {
        const items = await deliveries(projectId, hookId, query);
        return done(items) ? items : null;
      },
      timeoutMs,
      what,
    );
    return found!;
  }

  beforeAll(async () => {
    receiver = await startReceiver();
    t = await createTestPlatform({ config: { PLATFORM_OUTBOUND_ALLOW_LIST: '127.0.0.1' } });
    svc = t.platform.services.webhooks;
    svc.configure({ backoffBaseMs: 20, backoffMaxMs: 100 });
    t.platform.startBackground();
    owner = await t.createUser('hook-owner', ['developer']);
    dev = await t.createUser('hook-dev');
  });
  afterAll(async () => {
    await receiver?.close();
    await t?.close();
  });

  it('CRUD: create 201, list, get, patch (secret: null removes it), delete 204; the secret is never returned', async () => {
    const projectId = await newProject();
    const secret = 'crud-secret-value-1';
    const created = await createHook(projectId, {
      url: receiver.url('/ok/crud'),
      events: ['push', 'issue', 'push'],
      secret,
    });
    expect(created).toMatchObject({
      project_id: projectId,
      url: receiver.url('/ok/crud'),
      events: ['push', 'issue'],
      active: true,
      has_secret: true,
    });
    const seen: string[] = [JSON.stringify(created)];

    const list = await t.request('GET', hooksUrl(projectId), { token: owner.token });
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ items: [{ id: created.id }], next_cursor: null });
    const one = await t.request('GET', `${hooksUrl(projectId)}/${created.id}`, { token: owner.token });
    expect(one.body).toEqual(created);
    seen.push(list.text, one.text);

    const patched = await t.request('PATCH', `${hooksUrl(projectId)}/${created.id}`, {
      token: owner.token,
      body: { events: ['mr'], active: false },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ events: ['mr'], active: false, has_secret: true });
    const unsigned = await t.request('PATCH', `${hooksUrl(projectId)}/${created.id}`, {
      token: owner.token,
      body: { secret: null },
    });
    expect(unsigned.body).toMatchObject({ has_secret: false, events: ['mr'] });
    const resigned = await t.request('PATCH', `${hooksUrl(projectId)}/${created.id}`, {
      token: owner.token,
      body: { secret: 'another-secret-2', url: receiver.url('/ok/crud2') },
    });
    expect(resigned.body).toMatchObject({ has_secret: true, url: receiver.url('/ok/crud2') });
    seen.push(patched.text, unsigned.text, resigned.text);
    for (const text of seen) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain('another-secret-2');
      expect(text).not.toContain('secret_ciphertext');
    }

    // Stored sealed, audited without it.
    const row = await t.platform.drivers.db.db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', created.id)
      .executeTakeFirstOrThrow();
    expect(Buffer.from(row.secret_ciphertext!).includes('another-secret-2')).toBe(false);

    const removed = await t.request('DELETE', `${hooksUrl(projectId)}/${created.id}`, { token: owner.token });
    expect(removed.status).toBe(204);
    expectStableError(
      await t.request('GET', `${hooksUrl(projectId)}/${created.id}`, { token: owner.token }),
      404,
      'not_found',
    );
    const audit = await t.platform.drivers.db.db
      .selectFrom('audit_log')
      .select(['action', 'detail'])
      .where('resource_id', '=', created.id)
      .orderBy('created_at')
      .execute();
    expect(audit.map((a) => a.action)).toEqual([
      'webhook.create',
      'webhook.update',
      'webhook.update',
      'webhook.update',
      'webhook.delete',
    ]);
    expect(JSON.stringify(audit)).not.toMatch(/crud-secret|another-secret/);
  });

  it('bad input answers 4xx with the stable error body and writes nothing', async () => {
    const projectId = await newProject();
    const post = (body: unknown) => t.request('POST', hooksUrl(projectId), { token: owner.token, body });
    const url = receiver.url('/ok/bad');
    for (const body of [
      {},
      { url },
      { url, events: [] },
      { url, events: ['push', 'nope'] },
      { url, events: 'push' },
      { url, events: ['push'], secret: 'short' },
      { url, events: ['push'], secret: 'x'.repeat(257) },
      { url, events: ['push'], active: 'yes' },
      { url: 'not a url', events: ['push'] },
      { url: 'x'.repeat(2001), events: ['push'] },
    ]) {
      expectStableError(await post(body), 400, 'bad_request');
    }
    const hook = await createHook(projectId, { url, events: ['push'] });
    const hookUrl = `${hooksUrl(projectId)}/${hook.id}`;
    expectStableError(
      await t.request('PATCH', hookUrl, { token: owner.token, body: {} }),
      400,
      'bad_request',
    );
    expectStableError(
      await t.request('PATCH', hookUrl, { token: owner.token, body: { events: [] } }),
      400,
      'bad_request',
    );
    expectStableError(
      await t.request('GET', `${hooksUrl(projectId)}/not-a-uuid`, { token: owner.token }),
      400,
      'bad_request',
    );
    expectStableError(
      await t.request('DELETE', `${hooksUrl(projectId)}/${randomUUID()}`, { token: owner.token }),
      404,
      'not_found',
    );
    expectStableError(
      await t.request('GET', `${hookUrl}/deliveries?cursor=garbage`, { token: owner.token }),
      400,
      'bad_request',
    );
    expectStableError(
      await t.request('GET', `${hookUrl}/deliveries/${randomUUID()}`, { token: owner.token }),
      404,
      'not_found',
    );
    const list = await t.request('GET', hooksUrl(projectId), { token: owner.token });
    expect(list.body.items).toHaveLength(1);
  });

  it('permissions: a non-owner developer gets 403 on an internal project, 404 on a private one; admin may', async () => {
    const internal = await newProject('internal');
    const priv = await newProject('private');
    const member = await t.request('POST', `/api/projects/${internal}/members`, {
      token: owner.token,
      body: { user_id: dev.id, role: 'developer' },
    });
    expect(member.status, JSON.stringify(member.body)).toBe(201);
    const hook = await createHook(internal, { url: receiver.url('/ok/perm'), events: ['push'] });
    const body = { url: receiver.url('/ok/perm'), events: ['push'] };

    const asDev = (method: string, url: string, b?: unknown) =>
      t.request(method, url, { token: dev.token, ...(b ? { body: b } : {}) });
    const refused = await asDev('GET', hooksUrl(internal));
    expectStableError(refused, 403, 'forbidden');
    expect(refused.body.error.reason).toBe('webhook.owner_only');
    expectStableError(await asDev('POST', hooksUrl(internal), body), 403, 'forbidden');
    expectStableError(await asDev('GET', `${hooksUrl(internal)}/${hook.id}`), 403, 'forbidden');
    expectStableError(
      await asDev('PATCH', `${hooksUrl(internal)}/${hook.id}`, { active: false }),
      403,
      'forbidden',
    );
    expectStableError(await asDev('DELETE', `${hooksUrl(internal)}/${hook.id}`), 403, 'forbidden');
    expectStableError(await asDev('POST', `${hooksUrl(internal)}/${hook.id}/test`), 403, 'forbidden');
    expectStableError(await asDev('GET', `${hooksUrl(internal)}/${hook.id}/deliveries`), 403, 'forbidden');
    expectStableError(await asDev('GET', hooksUrl(priv)), 404, 'not_found');
    expectStableError(await asDev('POST', hooksUrl(priv), body), 404, 'not_found');
    expectStableError(await t.request('GET', hooksUrl(internal)), 401, 'unauthorized');

    const asAdmin = await t.request('POST', hooksUrl(priv), { token: t.adminToken, body });
    expect(asAdmin.status).toBe(201);
    expect((await t.request('GET', hooksUrl(internal), { token: dev.token })).status).toBe(403);
    expect((await t.request('GET', `${hooksUrl(internal)}/${hook.id}`, { token: owner.token })).body).toEqual(
      hook,
    );
  });

  it('a domain event reaches, signed, only the active webhooks of that project subscribed to its category', async () => {
    const projectId = await newProject();
    const otherProject = await newProject();
    const secret = 'issue-hook-secret';
    const issueHook = await createHook(projectId, {
      url: receiver.url('/ok/issue'),
      events: ['issue'],
      secret,
    });
    const pushHook = await createHook(projectId, { url: receiver.url('/ok/push'), events: ['push', 'mr'] });
    const inactive = await createHook(projectId, {
      url: receiver.url('/ok/inactive'),
      events: ['issue'],
      active: false,
    });
    const elsewhere = await createHook(otherProject, { url: receiver.url('/ok/other'), events: ['issue'] });

    const issueId = randomUUID();
    const payload = {
      projectId,
      project: 'hook-owner/some-project',
      issueId,
      number: 7,
      title: 'Löwe "quoted" \u2028 and emoji 🦁',
      status: 'open' as const,
      labels: ['bug'],
      authorId: owner.id,
      assigneeId: dev.id,
      actorId: owner.id,
      url: `/api/projects/${projectId}/issues/7`,
      body: 'line 1\nline 2 with \u0000 NUL',
    };
    t.platform.events.emit('issue.opened', payload);
    await t.platform.settle();
    // Rows are written by the time settle() returns: the others got none.
    expect(await deliveries(projectId, pushHook.id)).toEqual([]);
    expect(await deliveries(projectId, inactive.id)).toEqual([]);
    expect(await deliveries(otherProject, elsewhere.id)).toEqual([]);

    const [got] = await receiver.wait('/ok/issue', 'the issue delivery');
    expect(receiver.at('/ok/issue')).toHaveLength(1);
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.headers['user-agent']).toBe('Platform-Webhooks');
    expect(got!.headers['x-platform-event']).toBe('issue.opened');
    const deliveryId = String(got!.headers['x-platform-delivery']);
    expect(deliveryId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expectSignedBy(secret, got!);
    const body = JSON.parse(got!.body.toString('utf8'));
    expect(body).toEqual({
      event: 'issue.opened',
      delivery: deliveryId,
      project: { id: projectId, name: expect.any(String), full_name: `hook-owner/${body.project.name}` },
      // snake_case, as the rest of the API.
      data: {
        project_id: projectId,
        project: payload.project,
        issue_id: issueId,
        number: 7,
        title: payload.title,
        status: 'open',
        labels: ['bug'],
        author_id: owner.id,
        assignee_id: dev.id,
        actor_id: owner.id,
        url: payload.url,
        body: payload.body,
      },
      sent_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });

    const log = await logWhen(projectId, issueHook.id, (l) => l[0]?.status === 'success', 'a success');
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({
      delivery_id: deliveryId,
      event: 'issue.opened',
      attempt: 1,
      status: 'success',
      status_code: 204,
      error: null,
    });
    expect(log[0]!.duration_ms).toBeGreaterThanOrEqual(0);
    expect(log[0]!.finished_at).not.toBeNull();
    // The detail shows the body that was sent.
    const detail = await t.request('GET', `${hooksUrl(projectId)}/${issueHook.id}/deliveries/${log[0]!.id}`, {
      token: owner.token,
    });
    expect(detail.body.payload).toEqual(body);
    expect(receiver.at('/ok/inactive')).toEqual([]);
    expect(receiver.at('/ok/other')).toEqual([]);
  });

  it('an unsigned webhook gets no signature header; events without a project id are ignored', async () => {
    const projectId = await newProject();
    const hook = await createHook(projectId, { url: receiver.url('/ok/unsigned'), events: ['session'] });
    t.platform.events.emit('session.finished', {
      projectId: null,
      sessionId: randomUUID(),
      status: 'completed',
      requestedBy: owner.id,
    });
    await t.platform.settle();
    expect(await deliveries(projectId, hook.id)).toEqual([]);
    t.platform.events.emit('session.finished', {
      projectId,
      sessionId: randomUUID(),
      status: 'completed',
      requestedBy: owner.id,
    });
    await t.platform.settle();
    const [got] = await receiver.wait('/ok/unsigned', 'the session delivery');
    expect(got!.headers['x-platform-event']).toBe('session.finished');
    expect(got!.headers['x-platform-signature']).toBeUndefined();
    expect(got!.headers['x-platform-delivery']).toBeTruthy();
  });

  it('a receiver answering 500, 500, 200 gets exactly three attempts of one delivery, all logged', async () => {
    const projectId = await newProject();
    const secret = 'retry-secret-value';
    const path = `/flaky/${randomUUID()}`;
    const hook = await createHook(projectId, { url: receiver.url(path), events: ['pipeline'], secret });
    t.platform.events.emit('pipeline.finished', {
      projectId,
      pipelineId: randomUUID(),
      status: 'failure',
      ref: 'main',
      triggeredBy: owner.id,
      ownerId: owner.id,
    });
    await t.platform.settle();
    const log = await logWhen(
      projectId,
      hook.id,
      (l) => l[0]?.status === 'success',
      'the third attempt to succeed',
      '',
      15_000,
    );
    expect(log.map((d) => [d.attempt, d.status, d.status_code])).toEqual([
      [3, 'success', 200],
      [2, 'failure', 500],
      [1, 'failure', 500],
    ]);
    expect(new Set(log.map((d) => d.delivery_id)).size).toBe(1);
    expect(log[1]!.error).toBe('receiver answered HTTP 500');

    const got = receiver.at(path);
    expect(got).toHaveLength(3);
    expect(new Set(got.map((r) => r.headers['x-platform-delivery']))).toEqual(new Set([log[0]!.delivery_id]));
    // Byte-identical body and signature on every attempt.
    expect(got[1]!.body.equals(got[0]!.body)).toBe(true);
    expect(got[2]!.body.equals(got[0]!.body)).toBe(true);
    for (const r of got) expectSignedBy(secret, r);

    // Cursor pagination over the attempts.
    const first = await t.request('GET', `${hooksUrl(projectId)}/${hook.id}/deliveries?limit=2`, {
      token: owner.token,
    });
    expect(first.body.items.map((d: DeliveryView) => d.attempt)).toEqual([3, 2]);
    const second = await t.request(
      'GET',
      `${hooksUrl(projectId)}/${hook.id}/deliveries?limit=2&cursor=${first.body.next_cursor}`,
      { token: owner.token },
    );
    expect(second.body).toMatchObject({ items: [{ attempt: 1 }], next_cursor: null });
  });

  it('a 404 receiver gets one attempt and no retry', async () => {
    const projectId = await newProject();
    const path = `/missing/${randomUUID()}`;
    const hook = await createHook(projectId, { url: receiver.url(path), events: ['deploy'] });
    t.platform.events.emit('deployment.changed', {
      projectId,
      deploymentId: randomUUID(),
      environment: 'prod',
      status: 'succeeded',
      deployedBy: owner.id,
      ownerId: owner.id,
    });
    await t.platform.settle();
    const log = await logWhen(projectId, hook.id, (l) => l[0]?.status === 'failure', 'the failure');
    // A retry would have been inserted in the transaction that recorded the failure.
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ attempt: 1, status_code: 404, error: 'receiver answered HTTP 404' });
    expect(receiver.at(path)).toHaveLength(1);
  });

  it('a receiver that never answers: the timeout is recorded and the delivery retried', async () => {
    const projectId = await newProject();
    const path = `/hang/${randomUUID()}`;
    const hook = await createHook(projectId, { url: receiver.url(path), events: ['alert'] });
    const saved = { timeoutMs: svc.options.timeoutMs, maxAttempts: svc.options.maxAttempts };
    svc.configure({ timeoutMs: 300, maxAttempts: 2 });
    try {
      t.platform.events.emit('alert.fired', {
        projectId,
        ruleId: randomUUID(),
        alertEventId: randomUUID(),
        ruleName: 'cpu',
        message: 'hot',
        recipientIds: [],
      });
      await t.platform.settle();
      const log = await logWhen(
        projectId,
        hook.id,
        (l) => l.length === 2 && l.every((d) => d.status === 'failure'),
        'two timed-out attempts',
      );
      expect(log.map((d) => d.attempt)).toEqual([2, 1]);
      for (const d of log) {
        expect(d.status_code).toBeNull();
        expect(d.error).toMatch(/^timeout: no complete response within 300 ms/);
        expect(typeof d.duration_ms).toBe('number');
      }
      expect(receiver.at(path)).toHaveLength(2);
    } finally {
      svc.configure(saved);
    }
  });

  it('bounded concurrency: no more attempts in flight than `concurrency`, the rest wait unclaimed', async () => {
    const projectId = await newProject();
    const path = `/hold/${randomUUID()}`;
    const hook = await createHook(projectId, { url: receiver.url(path), events: ['alert'] });
    const saved = svc.options.concurrency;
    svc.configure({ concurrency: 2 });
    try {
      for (let i = 1; i <= 5; i++) {
        t.platform.events.emit('alert.resolved', {
          projectId,
          ruleId: randomUUID(),
          alertEventId: randomUUID(),
          ruleName: `rule ${i}`,
          message: 'back to normal',
          recipientIds: [],
        });
      }
      await t.platform.settle();
      await receiver.wait(path, 'two held requests', 2);
      // Only the two in flight are leased; the other three were not claimed.
      const rows = await t.platform.drivers.db.db
        .selectFrom('webhook_deliveries')
        .select((eb) => ['id', eb(eb.ref('next_attempt_at'), '>', sql<Date>`now()`).as('leased')])
        .where('webhook_id', '=', hook.id)
        .where('status', '=', 'pending')
        .execute();
      expect(rows).toHaveLength(5);
      expect(rows.filter((r) => r.leased)).toHaveLength(2);
      // A poll while every slot is busy claims nothing and leaves the worker able to go on.
      expect(await t.platform.scheduler.runNow(WEBHOOK_DELIVERY_LOOP)).toBe(true);
      expect(receiver.at(path)).toHaveLength(2);
    } finally {
      expect(receiver.release()).toBe(2);
      svc.configure({ concurrency: saved });
    }
    const log = await logWhen(
      projectId,
      hook.id,
      (l) => l.length === 5 && l.every((d) => d.status === 'success'),
      'all five delivered',
    );
    expect(new Set(log.map((d) => d.delivery_id)).size).toBe(5);
    expect(receiver.at(path)).toHaveLength(5);
  });

  it('POST …/test queues a ping (202 with the delivery id) that the receiver gets', async () => {
    const projectId = await newProject();
    const secret = 'ping-secret-value';
    const hook = await createHook(projectId, {
      url: receiver.url('/ok/ping'),
      events: ['push'],
      secret,
      active: false,
    });
    const res = await t.request('POST', `${hooksUrl(projectId)}/${hook.id}/test`, { token: owner.token });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ event: 'ping', attempt: 1, status: 'pending' });
    const deliveryId = res.body.delivery_id as string;
    const [got] = await receiver.wait('/ok/ping', 'the ping');
    expect(got!.headers['x-platform-event']).toBe('ping');
    expect(got!.headers['x-platform-delivery']).toBe(deliveryId);
    expectSignedBy(secret, got!);
    expect(JSON.parse(got!.body.toString())).toMatchObject({
      event: 'ping',
      delivery: deliveryId,
      project: { id: projectId },
      data: { hook_id: hook.id, events: ['push'] },
    });
    const log = await logWhen(
      projectId,
      hook.id,
      (l) => l[0]?.status === 'success',
      'the ping delivered',
      `?delivery_id=${deliveryId}`,
    );
    expect(log[0]).toMatchObject({ event: 'ping', status_code: 204 });
    expectStableError(
      await t.request('POST', `${hooksUrl(projectId)}/${randomUUID()}/test`, { token: owner.token }),
      404,
      'not_found',
    );
  });

  it('internal targets stay refused (422) on an allow-list that does not name them', async () => {
    const projectId = await newProject();
    for (const url of ['http://10.1.2.3/hook', 'http://169.254.169.254/latest/meta-data/']) {
      const res = await t.request('POST', hooksUrl(projectId), {
        token: owner.token,
        body: { url, events: ['push'] },
      });
      expectStableError(res, 422, 'unprocessable');
      expect(res.body.error.details[0]).toMatchObject({ path: 'body.url', reason: 'blocked' });
    }
    // A name that does not resolve (yet) is not a refused target: each attempt checks it again.
    const unresolved = await createHook(projectId, {
      url: 'http://receiver.invalid/hook',
      events: ['push'],
      active: false,
    });
    expect(unresolved.url).toBe('http://receiver.invalid/hook');
    const hook = await createHook(projectId, { url: receiver.url('/ok/patch'), events: ['push'] });
    const patch = await t.request('PATCH', `${hooksUrl(projectId)}/${hook.id}`, {
      token: owner.token,
      body: { url: 'http://10.0.0.1/' },
    });
    expectStableError(patch, 422, 'unprocessable');
    const after = await t.request('GET', `${hooksUrl(projectId)}/${hook.id}`, { token: owner.token });
    expect(after.body.url).toBe(receiver.url('/ok/patch'));
  });

  describe('without an allow-list', () => {
    let plain: TestPlatform;
    let plainProject: string;

    beforeAll(async () => {
      plain = await createTestPlatform();
      plainProject = await insertProject(plain, { name: 'no-allow-list' });
    });
    afterAll(async () => {
      await plain?.close();
    });

    it('refuses loopback, private, link-local and metadata targets, local names, other schemes and credentials with 422', async () => {
      const cases: [string, string][] = [
        [`http://127.0.0.1:${receiver.port}/ok`, 'blocked'],
        ['http://10.1.2.3/hook', 'blocked'],
        ['http://169.254.169.254/latest/meta-data/', 'blocked'],
        ['http://[::1]/hook', 'blocked'],
        [`http://localhost:${receiver.port}/ok`, 'blocked'],
        ['ftp://example.com/hook', 'invalid_url'],
        ['http://user:pw@example.com/hook', 'invalid_url'],
      ];
      for (const [url, reason] of cases) {
        const res = await plain.request('POST', `/api/projects/${plainProject}/webhooks`, {
          token: plain.adminToken,
          body: { url, events: ['push'] },
        });
        expectStableError(res, 422, 'unprocessable');
        expect(res.body.error.details[0], url).toMatchObject({ path: 'body.url', reason });
        expect(res.body.error.message, url).toMatch(/^webhook URL refused: /);
        // The refusal names the setting that admits a local receiver.
        if (reason === 'blocked') {
          expect(res.body.error.reason, url).toBe('webhook.non_public_address');
          expect(res.body.error.message, url).toContain('PLATFORM_OUTBOUND_ALLOW_LIST');
        } else expect(res.body.error.reason, url).toBe('webhook.invalid_url');
      }
      const rows = await plain.platform.drivers.db.db
        .selectFrom('webhooks')
        .select('id')
        .where('project_id', '=', plainProject)
        .execute();
      expect(rows).toEqual([]);
    });
  });
});
