import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NotifyService } from '../src/notify/index.js';
import {
  createTestPlatform,
  eventually,
  insertProject,
  servicesMissing,
  storeMode,
  type TestPlatform,
} from './helpers/app.js';

interface ReceivedMail {
  mail: ParsedMail;
  rcptTo: string[];
}

interface TestSmtp {
  port: number;
  received: ReceivedMail[];
  to(address: string): ReceivedMail[];
  close(): Promise<void>;
}

/** A real SMTP server (smtp-server) that parses every message it accepts (mailparser). */
async function startSmtp(port = 0): Promise<TestSmtp> {
  const received: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          received.push({ mail, rcptTo: session.envelope.rcptTo.map((r) => r.address) });
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.server.address() as AddressInfo).port;
  return {
    port: actual,
    received,
    to: (address) => received.filter((r) => r.rcptTo.includes(address)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Reads a fetch body until the text so far matches, or fails at the deadline. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  state: { text: string },
  pattern: RegExp,
  timeoutMs = 5000,
): Promise<RegExpExecArray> {
  const decoder = new TextDecoder();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(state.text);
    if (m) return m;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`stream did not show ${pattern}: ${state.text}`);
    let timer: NodeJS.Timeout | undefined;
    const chunk = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`stream did not show ${pattern}: ${state.text}`)), left);
      }),
    ]).finally(() => clearTimeout(timer));
    if (chunk.done) throw new Error(`stream ended before ${pattern}: ${state.text}`);
    state.text += decoder.decode(chunk.value, { stream: true });
  }
}

const EMAIL_LIMIT = 5;

/** `eventually` for a value: resolves to it once it is neither null nor undefined. */
async function waitFor<T>(
  fn: () => Promise<T | null | undefined>,
  timeoutMs = 5000,
  what = 'value',
): Promise<T> {
  return (await eventually(fn, timeoutMs, what)) as T;
}

async function rowsOf(t: TestPlatform, userId: string) {
  return t.platform.drivers.db.db
    .selectFrom('notifications')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
}

describe.skipIf(servicesMissing)(`notifications (${storeMode})`, () => {
  let t: TestPlatform;
  let smtp: TestSmtp;
  let svc: NotifyService;
  const db = () => t.platform.drivers.db.db;

  beforeAll(async () => {
    smtp = await startSmtp();
    t = await createTestPlatform({
      config: {
        PLATFORM_SMTP_HOST: '127.0.0.1',
        PLATFORM_SMTP_PORT: String(smtp.port),
        PLATFORM_SMTP_SECURITY: 'none',
        PLATFORM_SMTP_FROM: 'platform@example.test',
      },
    });
    svc = t.platform.services.notify;
    svc.configure({
      maxAttempts: 3,
      backoffBaseMs: 50,
      backoffMaxMs: 200,
      emailHourlyLimit: EMAIL_LIMIT,
      digestDelayMs: 60 * 60_000,
      outboundAllow: ['127.0.0.1'],
      outboundTimeoutMs: 2000,
    });
    t.platform.startBackground();
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('e-mails a failure: received by the SMTP server with subject, text and escaped HTML', async () => {
    const u = await t.createUser('mail-reader');
    await svc.notify(db(), {
      userIds: [u.id],
      type: 'pipeline.failed',
      subject: 'Pipeline #7 failed on main',
      body: 'step <test> exited with 1',
    });
    const got = await waitFor(async () => smtp.to('mail-reader@example.test')[0], 5000, 'the e-mail');
    expect(got.mail.subject).toBe('[Platform] Pipeline #7 failed on main');
    expect(got.mail.from?.text).toBe('platform@example.test');
    expect(got.mail.text).toContain('step <test> exited with 1');
    expect(got.mail.html).toContain('step &#60;test&#62; exited with 1');
    const rows = await waitFor(async () => {
      const r = await rowsOf(t, u.id);
      return r.every((x) => x.status === 'sent') ? r : null;
    });
    expect(rows.map((r) => r.channel).sort()).toEqual(['email', 'in_app']);
    expect(rows.find((r) => r.channel === 'email')!.recipient).toBe('mail-reader@example.test');
  });

  it('keeps a subject with CR/LF on one line: no injected header, no extra recipient', async () => {
    const u = await t.createUser('mail-inject');
    await svc.notify(db(), {
      userIds: [u.id],
      type: 'alert.fired',
      subject: 'Disk full\r\nBcc: victim@example.test\r\nX-Evil: 1',
    });
    const got = await waitFor(async () => smtp.to('mail-inject@example.test')[0], 5000, 'the e-mail');
    expect(got.rcptTo).toEqual(['mail-inject@example.test']);
    expect(got.mail.headers.get('bcc')).toBeUndefined();
    expect(got.mail.headers.get('x-evil')).toBeUndefined();
    expect(got.mail.subject).toBe('[Platform] Disk full Bcc: victim@example.test X-Evil: 1');
    expect(smtp.to('victim@example.test')).toHaveLength(0);
  });

  it('defaults: in-app for everything, e-mail only for failures and alerts', async () => {
    const u = await t.createUser('defaults-user');
    await svc.notify(db(), { userIds: [u.id], type: 'mr.opened', subject: 'MR !1 opened' });
    await svc.notify(db(), { userIds: [u.id, u.id, null], type: 'alert.fired', subject: 'CPU high' });
    const rows = await rowsOf(t, u.id);
    expect(rows.map((r) => `${r.type}/${r.channel}`).sort()).toEqual([
      'alert.fired/email',
      'alert.fired/in_app',
      'mr.opened/in_app',
    ]);
  });

  it('preferences: GET/PUT replace the set and steer the channels', async () => {
    const u = await t.createUser('prefs-user');
    const empty = await t.request('GET', '/api/notifications/preferences', { token: u.token });
    expect(empty.status).toBe(200);
    expect(empty.body.items).toEqual([]);
    expect(empty.body.defaults.email).toMatch(/failures/);

    const put = await t.request('PUT', '/api/notifications/preferences', {
      token: u.token,
      body: {
        items: [
          { event_type: 'mr.opened', channels: ['email'] },
          { event_type: '*', channels: ['in_app'] },
        ],
      },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body.items).toEqual([
      { event_type: '*', channels: ['in_app'] },
      { event_type: 'mr.opened', channels: ['email'] },
    ]);
    const bad = await t.request('PUT', '/api/notifications/preferences', {
      token: u.token,
      body: { items: [{ event_type: 'x', channels: ['sms'] }] },
    });
    expect(bad.status).toBe(400);

    await svc.notify(db(), { userIds: [u.id], type: 'mr.opened', subject: 'MR' });
    await svc.notify(db(), { userIds: [u.id], type: 'pipeline.failed', subject: 'red' });
    const rows = await rowsOf(t, u.id);
    expect(rows.map((r) => `${r.type}/${r.channel}`).sort()).toEqual([
      'mr.opened/email',
      'pipeline.failed/in_app',
    ]);

    const audit = await db()
      .selectFrom('audit_log')
      .select(['action', 'actor_id'])
      .where('action', '=', 'notification_preferences.update')
      .where('actor_id', '=', u.id)
      .execute();
    expect(audit).toHaveLength(1);
  });

  it('API: list with cursor and filters, read, read-all, unread count, only own notifications', async () => {
    const u = await t.createUser('inbox-user');
    const other = await t.createUser('inbox-other');
    for (const i of [1, 2, 3]) {
      await svc.notify(db(), {
        userIds: [u.id],
        type: i === 3 ? 'issue.assigned' : 'mr.opened',
        subject: `n${i}`,
      });
    }
    await svc.notify(db(), { userIds: [other.id], type: 'mr.opened', subject: 'not yours' });

    const count = await t.request('GET', '/api/notifications/unread-count', { token: u.token });
    expect(count.body).toEqual({ count: 3 });

    const page1 = await t.request('GET', '/api/notifications?limit=2', { token: u.token });
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((n: { subject: string }) => n.subject)).toEqual(['n3', 'n2']);
    expect(page1.body.next_cursor).toEqual(expect.any(String));
    const page2 = await t.request('GET', `/api/notifications?limit=2&cursor=${page1.body.next_cursor}`, {
      token: u.token,
    });
    expect(page2.body.items.map((n: { subject: string }) => n.subject)).toEqual(['n1']);
    expect(page2.body.next_cursor).toBeNull();

    const typed = await t.request('GET', '/api/notifications?type=issue.assigned', { token: u.token });
    expect(typed.body.items).toHaveLength(1);

    const target = page1.body.items[0].id as string;
    const read = await t.request('PATCH', `/api/notifications/${target}/read`, { token: u.token });
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(read.body.status).toBe('read');
    expect(read.body.read_at).toEqual(expect.any(String));
    const again = await t.request('PATCH', `/api/notifications/${target}/read`, { token: u.token });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'conflict', reason: 'notify.not_readable' });
    const foreign = await t.request('PATCH', `/api/notifications/${target}/read`, { token: other.token });
    expect(foreign.status).toBe(404);

    const readFilter = await t.request('GET', '/api/notifications?status=read', { token: u.token });
    expect(readFilter.body.items.map((n: { id: string }) => n.id)).toEqual([target]);

    const all = await t.request('POST', '/api/notifications/read-all', { token: u.token });
    expect(all.body).toEqual({ updated: 2 });
    expect((await t.request('GET', '/api/notifications/unread-count', { token: u.token })).body).toEqual({
      count: 0,
    });
    expect((await t.request('GET', '/api/notifications/unread-count', { token: other.token })).body).toEqual({
      count: 1,
    });
    expect((await t.request('GET', '/api/notifications')).status).toBe(401);
  });

  it('pushes in-app notifications over the SSE stream', async () => {
    const u = await t.createUser('sse-user');
    await t.platform.fastify.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.platform.fastify.server.address() as AddressInfo;
    const abort = new AbortController();
    const res = await fetch(`http://127.0.0.1:${port}/api/notifications/stream`, {
      headers: { authorization: `Bearer ${u.token}` },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const reader = res.body!.getReader();
    const state = { text: '' };
    await readUntil(reader, state, /event: ready\ndata: \{"unread":0\}/);

    await svc.notify(db(), { userIds: [u.id], type: 'session.finished', subject: 'Agent session done' });
    const m = await readUntil(reader, state, /event: notification\nid: [^\n]+\ndata: ([^\n]+)\n\n/);
    const pushed = JSON.parse(m[1]!);
    expect(pushed).toMatchObject({ subject: 'Agent session done', channel: 'in_app', status: 'sent' });
    abort.abort();
    await reader.cancel().catch(() => {});

    const anonymous = await fetch(`http://127.0.0.1:${port}/api/notifications/stream`);
    expect(anonymous.status).toBe(401);
  });

  describe('webhook channel', () => {
    let receiver: http.Server;
    let url = '';
    const deliveries: { headers: http.IncomingHttpHeaders; body: string }[] = [];
    let failNext = 0;

    beforeAll(async () => {
      receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => {
          body += c.toString();
        });
        req.on('end', () => {
          deliveries.push({ headers: req.headers, body });
          if (req.url === '/gone') res.writeHead(410).end();
          else if (failNext > 0) {
            failNext--;
            res.writeHead(503).end('busy');
          } else res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    });
    afterAll(async () => {
      await new Promise((r) => receiver.close(r));
    });

    it('delivers a signed payload the receiver verifies with its own HMAC; retries a 503', async () => {
      const u = await t.createUser('hook-user');
      const secret = 'receiver-shared-secret-123';
      const created = await t.request('POST', '/api/notifications/webhooks', {
        token: u.token,
        body: { url, secret },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body).toMatchObject({ url, has_secret: true, is_active: true });
      expect(JSON.stringify(created.body)).not.toContain(secret);
      const listed = await t.request('GET', '/api/notifications/webhooks', { token: u.token });
      expect(listed.body.items).toHaveLength(1);

      failNext = 1;
      await svc.notify(db(), { userIds: [u.id], type: 'deployment.changed', subject: 'Deployed to prod' });
      const row = await waitFor(async () => {
        const r = (await rowsOf(t, u.id)).find((x) => x.channel === 'webhook');
        return r?.status === 'sent' ? r : null;
      });
      expect(row.attempts).toBe(2);
      const mine = deliveries.filter((d) => d.headers['x-platform-delivery'] === row.id);
      expect(mine).toHaveLength(2);
      const last = mine[1]!;
      const expected = `sha256=${createHmac('sha256', secret).update(last.body).digest('hex')}`;
      const given = String(last.headers['x-platform-signature']);
      expect(timingSafeEqual(Buffer.from(given), Buffer.from(expected))).toBe(true);
      expect(last.headers['x-platform-event']).toBe('deployment.changed');
      expect(JSON.parse(last.body)).toMatchObject({ id: row.id, subject: 'Deployed to prod' });
    });

    it('refuses internal webhook URLs that are not allow-listed', async () => {
      const u = await t.createUser('hook-ssrf');
      for (const bad of [
        'http://169.254.169.254/latest',
        'http://10.0.0.5/x',
        'http://[::1]/',
        'file:///etc/passwd',
      ]) {
        const r = await t.request('POST', '/api/notifications/webhooks', {
          token: u.token,
          body: { url: bad },
        });
        expect(r.status, bad).toBe(400);
        // file: is not an http(s) URL at all (the body schema refuses it); the others reach the guard.
        if (!bad.startsWith('file:')) {
          expect(r.body.error.reason, bad).toBe('notify.webhook_url_refused');
          expect(r.body.error.message, bad).toContain('PLATFORM_OUTBOUND_ALLOW_LIST');
        }
      }
    });

    it('a permanently failing receiver (4xx) fails at once with the error kept', async () => {
      const u = await t.createUser('hook-410');
      const created = await t.request('POST', '/api/notifications/webhooks', {
        token: u.token,
        body: { url: url.replace('/hook', '/gone') },
      });
      expect(created.status).toBe(201);
      await svc.notify(db(), { userIds: [u.id], type: 'mr.merged', subject: 'merged' });
      const row = await waitFor(async () => {
        const r = (await rowsOf(t, u.id)).find((x) => x.channel === 'webhook');
        return r?.status === 'failed' ? r : null;
      });
      expect(row.attempts).toBe(1);
      expect(row.error).toBe('webhook: receiver answered HTTP 410');

      const removed = await t.request('DELETE', `/api/notifications/webhooks/${created.body.id}`, {
        token: u.token,
      });
      expect(removed.status).toBe(204);
      expect((await t.request('GET', '/api/notifications/webhooks', { token: u.token })).body.items).toEqual(
        [],
      );
    });
  });

  it('domain events notify the right people', async () => {
    const triggerer = await t.createUser('ev-trigger');
    const owner = await t.createUser('ev-owner');
    const author = await t.createUser('ev-author');
    t.platform.events.emit('pipeline.finished', {
      projectId: await insertProject(t, { ownerId: owner.id, name: 'ev-project' }),
      pipelineId: '00000000-0000-4000-8000-000000000001',
      status: 'failure',
      ref: 'main',
      triggeredBy: triggerer.id,
      ownerId: owner.id,
    });
    t.platform.events.emit('mr.opened', {
      projectId: await insertProject(t, { ownerId: owner.id, name: 'ev-project-2' }),
      mergeRequestId: '00000000-0000-4000-8000-000000000002',
      number: 4,
      title: 'Add thing',
      authorId: author.id,
      sourceBranch: 'feature',
      targetBranch: 'main',
      headSha: 'a'.repeat(40),
      recipientIds: [owner.id, author.id],
    });
    await t.platform.events.drain();
    const ofTrigger = await rowsOf(t, triggerer.id);
    expect(ofTrigger.map((r) => `${r.type}/${r.channel}`).sort()).toEqual([
      'pipeline.failed/email',
      'pipeline.failed/in_app',
    ]);
    const ofOwner = await rowsOf(t, owner.id);
    expect(ofOwner.map((r) => r.type).sort()).toEqual(['mr.opened', 'pipeline.failed', 'pipeline.failed']);
    expect(await rowsOf(t, author.id)).toEqual([]);
    expect(ofOwner.find((r) => r.type === 'mr.opened')!.subject).toBe('Merge request !4 opened: Add thing');
  });

  it('a storm of 500 failures: 500 in-app notifications, a bounded number of e-mails (one digest)', async () => {
    const u = await t.createUser('storm-user');
    const projectId = await insertProject(t, { name: 'storm-project' });
    for (let i = 0; i < 500; i++) {
      t.platform.events.emit('pipeline.finished', {
        projectId,
        pipelineId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        status: 'failure',
        ref: `branch-${i}`,
        triggeredBy: null,
        ownerId: u.id,
      });
    }
    await t.platform.events.drain();
    const rows = await rowsOf(t, u.id);
    // Only this storm's handlers: an earlier test emits mr.opened for a project without a repository,
    // which the pipeline trigger rightly reports as a failure.
    const failures = t.logLines.filter(
      (l) => l.includes('handler failed') && l.includes('"pipeline.finished"'),
    );
    expect(failures).toEqual([]);
    expect(rows.filter((r) => r.channel === 'in_app')).toHaveLength(500);
    const emails = rows.filter((r) => r.channel === 'email');
    expect(emails).toHaveLength(EMAIL_LIMIT + 1);
    const digest = emails.find((r) => r.type === 'digest')!;
    expect(digest.group_count).toBe(500 - EMAIL_LIMIT);

    // The digest waits for more events; make it due now instead of waiting the delay.
    await db()
      .updateTable('notifications')
      .set({ next_attempt_at: sql`now()` })
      .where('id', '=', digest.id)
      .execute();
    svc.onEnqueued();
    await eventually(
      async () => smtp.to('storm-user@example.test').length === EMAIL_LIMIT + 1,
      10_000,
      'the storm e-mails',
    );
    const mails = smtp.to('storm-user@example.test');
    const digestMail = mails.find((m) => /more notifications/.test(m.mail.subject ?? ''))!;
    expect(digestMail.mail.subject).toBe(`[Platform] ${500 - EMAIL_LIMIT} more notifications`);
    expect(digestMail.mail.text).toContain('Pipeline failed on branch-');
    await eventually(async () => {
      const r = await rowsOf(t, u.id);
      return r.filter((x) => x.status === 'sent').length === 500 + EMAIL_LIMIT + 1;
    }, 20_000);
    expect(smtp.to('storm-user@example.test')).toHaveLength(EMAIL_LIMIT + 1);
  });
});

describe.skipIf(servicesMissing)(`notifications with SMTP down (${storeMode})`, () => {
  let t: TestPlatform;
  let port = 0;
  let smtp: TestSmtp | undefined;

  beforeAll(async () => {
    const probe = await startSmtp();
    port = probe.port;
    await probe.close();
    t = await createTestPlatform({
      config: {
        PLATFORM_SMTP_HOST: '127.0.0.1',
        PLATFORM_SMTP_PORT: String(port),
        PLATFORM_SMTP_SECURITY: 'none',
      },
    });
    t.platform.services.notify.configure({ maxAttempts: 3, backoffBaseMs: 30, backoffMaxMs: 100 });
    t.platform.startBackground();
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it('retries, then fails with the error kept; later ones are delivered once the server is back', async () => {
    const svc = t.platform.services.notify;
    const db = t.platform.drivers.db.db;
    const u = await t.createUser('down-user');
    await svc.notify(db, { userIds: [u.id], type: 'pipeline.failed', subject: 'lost?' });
    const failed = await waitFor(
      async () => {
        const r = (await rowsOf(t, u.id)).find((x) => x.channel === 'email');
        return r?.status === 'failed' ? r : null;
      },
      15_000,
      'the e-mail to fail',
    );
    expect(failed.attempts).toBe(3);
    expect(failed.error).toMatch(/smtp: .*(ECONNREFUSED|connect)/i);

    // A new one while the server is still down: it fails an attempt, then the server comes back.
    svc.configure({ maxAttempts: 50, backoffBaseMs: 100, backoffMaxMs: 300 });
    await svc.notify(db, { userIds: [u.id], type: 'alert.fired', subject: 'second try' });
    await eventually(async () => {
      const r = (await rowsOf(t, u.id)).find((x) => x.subject === 'second try' && x.channel === 'email');
      return r && r.attempts >= 1 && r.error !== null;
    }, 10_000);
    smtp = await startSmtp(port);
    const got = await waitFor(
      async () => smtp!.to('down-user@example.test')[0],
      15_000,
      'the retried e-mail',
    );
    expect(got.mail.subject).toBe('[Platform] second try');
    const row = await waitFor(async () => {
      const r = (await rowsOf(t, u.id)).find((x) => x.subject === 'second try' && x.channel === 'email');
      return r?.status === 'sent' ? r : null;
    });
    expect(row.error).toBeNull();
    expect(smtp.to('down-user@example.test')).toHaveLength(1);
  });
});
