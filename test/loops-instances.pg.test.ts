/**
 * Two platform instances on one PostgreSQL schema and one Valkey run every background loop without
 * double execution: the single-instance loops run on one instance at a time (a lease), and the
 * loops every instance runs (they claim rows) have exactly-once effects — project webhook
 * deliveries, notification e-mails, the deployer's reconcile of each change, the agent reaper's end
 * of each vanished session. Pipelines (pipelines-instances), OTLP ingest (observe-instances), alerts
 * (observe-alerts-instances) and the notification outbox across a restart (notify-restart) have
 * files of their own.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_LEASE_LOOP, AGENT_REAP_LOOP } from '../src/agents/index.js';
import type { Loop } from '../src/core/scheduler.js';
import { DEPLOY_LOOPS } from '../src/deployer/index.js';
import { MERGE_RECOVERY_LOOP } from '../src/mergerequests/index.js';
import { NOTIFY_DELIVERY_LOOP } from '../src/notify/index.js';
import { ALERT_LOOP } from '../src/observe/alerts/alerting.js';
import { PIPELINE_LOOPS } from '../src/pipeline/index.js';
import { WEBHOOK_DELIVERY_LOOP } from '../src/webhooks/index.js';
import {
  createTestPlatform,
  createTestStore,
  eventually,
  servicesMissing,
  type TestPlatform,
  type TestStore,
} from './helpers/app.js';

/** Loops one instance at a time runs (a lease in scheduler_leases). */
const SINGLE_INSTANCE = [
  'auth.purge-expired-sessions',
  AGENT_REAP_LOOP,
  'observe.rotate',
  ALERT_LOOP,
  PIPELINE_LOOPS.schedules,
  PIPELINE_LOOPS.artifactExpiry,
  DEPLOY_LOOPS.previewTtl,
  DEPLOY_LOOPS.opsSync,
  MERGE_RECOVERY_LOOP,
];
/** Loops every instance runs: each claims rows (FOR UPDATE SKIP LOCKED or a guarded update). */
const EVERY_INSTANCE = [
  AGENT_LEASE_LOOP,
  NOTIFY_DELIVERY_LOOP,
  PIPELINE_LOOPS.claim,
  PIPELINE_LOOPS.heartbeat,
  DEPLOY_LOOPS.reconcile,
  WEBHOOK_DELIVERY_LOOP,
];

describe.skipIf(servicesMissing)('background loops on two instances', () => {
  let store: TestStore;
  let a: TestPlatform;
  let b: TestPlatform;
  let owner: { id: string; token: string };
  let projectId: string;
  const mails: { to: string[]; mail: ParsedMail }[] = [];
  let smtp: SMTPServer;
  const hooks: { delivery: string; event: string }[] = [];
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hooks.push({
        delivery: String(req.headers['x-platform-delivery']),
        event: String(req.headers['x-platform-event']),
      });
      res.writeHead(204).end();
    });
  });

  beforeAll(async () => {
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, callback) {
        simpleParser(stream).then(
          (mail) => {
            mails.push({ to: session.envelope.rcptTo.map((r) => r.address), mail });
            callback();
          },
          (err: Error) => callback(err),
        );
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const config = {
      PLATFORM_SMTP_HOST: '127.0.0.1',
      PLATFORM_SMTP_PORT: String((smtp.server.address() as AddressInfo).port),
      PLATFORM_SMTP_SECURITY: 'none',
      PLATFORM_OUTBOUND_ALLOW_LIST: '127.0.0.1',
    };
    store = await createTestStore('postgres');
    a = await createTestPlatform({ store, config });
    b = await createTestPlatform({ store, config, bare: true });
    owner = await a.createUser('loop-owner', ['developer']);
    const res = await a.request('POST', '/api/projects', { token: owner.token, body: { name: 'loops' } });
    expect(res.status, res.text).toBe(201);
    projectId = res.body.id;
  }, 120_000);
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await store?.drop();
    await new Promise<void>((r) => smtp.close(() => r()));
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  it('every loop the platform registers is one of the two lists (a new loop needs a test here)', () => {
    // The scheduler keeps its loops private; the test reads their names and kinds only.
    const loops = (a.platform.scheduler as unknown as { loops: Loop[] }).loops;
    const single = loops.filter((l) => l.singleInstance !== false).map((l) => l.name);
    const every = loops.filter((l) => l.singleInstance === false).map((l) => l.name);
    expect(single.sort()).toEqual([...SINGLE_INSTANCE].sort());
    expect(every.sort()).toEqual([...EVERY_INSTANCE].sort());
  });

  it('each single-instance loop, started on both instances at once, runs on exactly one', async () => {
    for (const name of SINGLE_INSTANCE) {
      const ran = await Promise.all([a.platform.scheduler.runNow(name), b.platform.scheduler.runNow(name)]);
      expect(ran.filter(Boolean), name).toHaveLength(1);
      // The holder keeps it: the other instance still does not run it.
      const holderIsA = ran[0];
      expect(await (holderIsA ? b : a).platform.scheduler.runNow(name), name).toBe(false);
      expect(await (holderIsA ? a : b).platform.scheduler.runNow(name), name).toBe(true);
    }
    const leases = await sql<{ name: string; n: number }>`
      select name, count(*)::int as n from scheduler_leases group by name`.execute(a.platform.drivers.db.db);
    expect(leases.rows.map((r) => r.name).sort()).toEqual([...SINGLE_INSTANCE].sort());
    expect(leases.rows.every((r) => r.n === 1)).toBe(true);
  });

  it('the agent reaper of both instances at once ends each vanished session once', async () => {
    const db = a.platform.drivers.db.db;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const row = await db
        .insertInto('agent_sessions')
        .values({
          project_id: projectId,
          user_id: owner.id,
          prompt: `vanished ${i}`,
          status: 'running',
          runner: 'local',
          lease_holder: randomUUID(),
          lease_expires_at: sql<Date>`now() - interval '1 minute'`,
          started_at: sql<Date>`now() - interval '5 minutes'`,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      ids.push(row.id);
    }
    const finished: string[] = [];
    const offA = a.platform.events.on('session.finished', (e) => void finished.push(e.sessionId));
    const offB = b.platform.events.on('session.finished', (e) => void finished.push(e.sessionId));
    try {
      const reaped = await Promise.all([
        a.platform.services.agents.reap(),
        b.platform.services.agents.reap(),
        a.platform.services.agents.reap(),
        b.platform.services.agents.reap(),
      ]);
      expect(reaped.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(ids.length);
      await a.platform.settle();
      await b.platform.settle();
      expect(finished.sort()).toEqual([...ids].sort());
      const rows = await db
        .selectFrom('agent_sessions')
        .select(['id', 'status', 'error'])
        .where('id', 'in', ids)
        .execute();
      expect(rows.every((r) => r.status === 'failed' && String(r.error).includes('vanished'))).toBe(true);
      // One end milestone per session, not one per instance that saw it vanish.
      const milestones = await db
        .selectFrom('agent_messages')
        .select((eb) => ['session_id', eb.fn.countAll<number>().as('n')])
        .where('session_id', 'in', ids)
        .where('kind', '=', 'milestone')
        .groupBy('session_id')
        .execute();
      expect(milestones).toHaveLength(ids.length);
      expect(milestones.every((m) => Number(m.n) === 1)).toBe(true);
    } finally {
      offA();
      offB();
    }
  });

  describe('with both instances started', () => {
    beforeAll(() => {
      a.platform.startBackground();
      b.platform.startBackground();
    });

    it('project webhooks: 30 events raised on either instance, each delivered exactly once', async () => {
      const hook = await a.request('POST', `/api/projects/${projectId}/webhooks`, {
        token: owner.token,
        body: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, events: ['alert'] },
      });
      expect(hook.status, hook.text).toBe(201);
      for (let i = 0; i < 30; i++) {
        (i % 2 ? b : a).platform.events.emit('alert.fired', {
          projectId,
          ruleId: randomUUID(),
          alertEventId: randomUUID(),
          ruleName: `rule ${i}`,
          message: 'hot',
          recipientIds: [],
        });
      }
      await a.platform.settle();
      await b.platform.settle();
      const db = a.platform.drivers.db.db;
      const rows = await eventually(async () => {
        const r = await db
          .selectFrom('webhook_deliveries')
          .select(['delivery_id', 'status', 'attempt'])
          .where('webhook_id', '=', hook.body.id)
          .execute();
        return r.length === 30 && r.every((d) => d.status === 'success') ? r : null;
      }, 20_000);
      expect(rows!.every((d) => d.attempt === 1)).toBe(true);
      const received = hooks.filter((h) => h.event.startsWith('alert')).map((h) => h.delivery);
      expect(received).toHaveLength(30);
      expect(new Set(received)).toEqual(new Set(rows!.map((d) => d.delivery_id)));
    });

    it('notifications: 20 e-mails enqueued through both instances, each sent exactly once', async () => {
      const user = await a.createUser('loop-reader');
      const to = 'loop-reader@example.test';
      for (let i = 0; i < 20; i++) {
        const t = i % 2 ? b : a;
        await t.platform.services.notify.notify(t.platform.drivers.db.db, {
          userIds: [user.id],
          type: 'pipeline.failed',
          subject: `mail ${i}`,
        });
      }
      const db = a.platform.drivers.db.db;
      await eventually(async () => {
        const r = await db
          .selectFrom('notifications')
          .select('status')
          .where('user_id', '=', user.id)
          .where('channel', '=', 'email')
          .execute();
        return r.length === 20 && r.every((x) => x.status === 'sent');
      }, 20_000);
      const subjects = mails.filter((m) => m.to.includes(to)).map((m) => m.mail.subject);
      expect(subjects.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `[Platform] mail ${i}`).sort());
    });

    it('the reconciler of both instances takes each deployment change once: one history row per change', async () => {
      const envs = Array.from({ length: 8 }, (_, i) => `env-${i}`);
      const changed: string[] = [];
      const offA = a.platform.events.on('deployment.changed', (e) => void changed.push(JSON.stringify(e)));
      const offB = b.platform.events.on('deployment.changed', (e) => void changed.push(JSON.stringify(e)));
      try {
        for (const [i, env] of envs.entries()) {
          const res = await (i % 2 ? b : a).request(
            'PATCH',
            `/api/projects/${projectId}/deployments/${env}`,
            {
              token: owner.token,
              body: { image_ref: `registry.test/loops:${i}` },
            },
          );
          expect(res.status, res.text).toBe(200);
        }
        const db = a.platform.drivers.db.db;
        const done = await eventually(async () => {
          const r = await db
            .selectFrom('deployments')
            .select(['id', 'environment', 'generation', 'observed_generation', 'current_status'])
            .where('project_id', '=', projectId)
            .execute();
          return r.length === envs.length &&
            r.every((d) => d.observed_generation === d.generation || d.current_status === 'failed')
            ? r
            : null;
        }, 30_000);
        await a.platform.settle();
        await b.platform.settle();
        const history = await db
          .selectFrom('deployment_history')
          .select((eb) => ['deployment_id', eb.fn.countAll<number>().as('n')])
          .where(
            'deployment_id',
            'in',
            done!.map((d) => d.id),
          )
          .groupBy('deployment_id')
          .execute();
        expect(history).toHaveLength(envs.length);
        expect(history.map((h) => Number(h.n))).toEqual(envs.map(() => 1));
        expect(changed.length).toBeGreaterThan(0);
      } finally {
        offA();
        offB();
      }
    });
  });
});
