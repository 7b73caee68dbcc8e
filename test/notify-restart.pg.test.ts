import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  createTestStore,
  eventually,
  servicesMissing,
  type TestPlatform,
  type TestStore,
} from './helpers/app.js';

/** Outbox restart safety: two platforms, one after the other, on one PostgreSQL schema. */
describe.skipIf(servicesMissing)('notification outbox across a restart', () => {
  let store: TestStore;
  let a: TestPlatform | undefined;
  let b: TestPlatform | undefined;
  const received: { to: string[]; mail: ParsedMail }[] = [];
  let smtp: SMTPServer;
  let config: Record<string, string>;

  beforeAll(async () => {
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, callback) {
        simpleParser(stream).then(
          (mail) => {
            received.push({ to: session.envelope.rcptTo.map((r) => r.address), mail });
            callback();
          },
          (err: Error) => callback(err),
        );
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    const port = (smtp.server.address() as AddressInfo).port;
    config = {
      PLATFORM_SMTP_HOST: '127.0.0.1',
      PLATFORM_SMTP_PORT: String(port),
      PLATFORM_SMTP_SECURITY: 'none',
    };
    store = await createTestStore('postgres');
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await store?.drop();
    await new Promise<void>((r) => smtp.close(() => r()));
  });

  const subjects = (to: string) => received.filter((m) => m.to.includes(to)).map((m) => m.mail.subject);

  it('rows pending when one instance stops are delivered by the next, each exactly once', async () => {
    a = await createTestPlatform({ store, config });
    a.platform.startBackground();
    const svcA = a.platform.services.notify;
    const user = await a.createUser('restart-user');
    const to = 'restart-user@example.test';
    const db = a.platform.drivers.db.db;

    await svcA.notify(db, { userIds: [user.id], type: 'pipeline.failed', subject: 'before restart' });
    await eventually(async () => subjects(to).length === 1, 10_000, 'the first e-mail');

    // Written but not yet delivered when the instance stops: the worker only polls, after the close.
    svcA.onEnqueued = () => {};
    await svcA.notify(db, { userIds: [user.id], type: 'alert.fired', subject: 'pending at shutdown' });
    // A row a crashed instance had claimed: its lease (next_attempt_at) ran out, attempts counted.
    await svcA.notify(db, {
      userIds: [user.id],
      type: 'alert.fired',
      subject: 'claimed by a crashed instance',
    });
    await db
      .updateTable('notifications')
      .set({ attempts: 1, next_attempt_at: sql`now() - interval '1 second'` })
      .where('subject', '=', 'claimed by a crashed instance')
      .execute();
    await a.close();
    a = undefined;

    b = await createTestPlatform({ store, config });
    b.platform.startBackground();
    await eventually(async () => subjects(to).length === 3, 10_000, 'the pending e-mails');
    const rows = await eventually(async () => {
      const r = await b!.platform.drivers.db.db
        .selectFrom('notifications')
        .select(['subject', 'channel', 'status', 'attempts'])
        .where('user_id', '=', user.id)
        .execute();
      return r.every((x) => x.status === 'sent') ? r : null;
    });
    expect(rows).toHaveLength(6);
    expect(
      rows!.find((r) => r.subject === 'claimed by a crashed instance' && r.channel === 'email')!.attempts,
    ).toBe(2);
    expect(subjects(to).sort()).toEqual([
      '[Platform] before restart',
      '[Platform] claimed by a crashed instance',
      '[Platform] pending at shutdown',
    ]);
  });
});
