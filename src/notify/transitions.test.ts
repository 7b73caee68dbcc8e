import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../test/helpers/app.js';
import type { DbHandle } from '../store/index.js';
import {
  type NotificationChannel,
  type NotificationStatus,
  notificationStatuses,
  notificationStatusTransitions,
} from '../store/schema.js';
import {
  markNotificationFailed,
  markNotificationSent,
  markNotificationsRead,
  NOTIFICATION_TRANSITIONS,
} from './transitions.js';

describe('notification status transitions', () => {
  let store: TestStore;
  let handle: DbHandle;
  let userId: string;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    handle = await store.openDb();
    userId = (
      await handle.db
        .insertInto('users')
        .values({ name: 'nora', email: 'nora@example.test' })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  });
  afterAll(async () => {
    await handle?.close();
    await store?.drop();
  });

  async function notification(status: NotificationStatus, channel: NotificationChannel = 'in_app') {
    return (
      await handle.db
        .insertInto('notifications')
        .values({
          user_id: userId,
          type: 'test.event',
          subject: 's',
          channel,
          status,
          next_attempt_at: new Date(),
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  }
  const statusOf = async (id: string) =>
    (
      await handle.db
        .selectFrom('notifications')
        .select('status')
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
    ).status;

  it('every named transition is allowed by the table; the one edge nothing writes is failed → pending', () => {
    const written = Object.entries(NOTIFICATION_TRANSITIONS).flatMap(([to, from]) =>
      from.map((f) => `${f}→${to}`),
    );
    const table = notificationStatuses.flatMap((f) =>
      notificationStatusTransitions[f].map((t) => `${f}→${t}`),
    );
    for (const edge of written) expect(table).toContain(edge);
    // A failed notification stays failed: no API re-sends it (yet).
    expect(table.filter((e) => !written.includes(e))).toEqual(['failed→pending']);
  });

  it('pending → sent', async () => {
    const id = await notification('pending', 'email');
    const row = await markNotificationSent(handle.db, id);
    expect(row).toMatchObject({ id, status: 'sent', next_attempt_at: null, error: null });
    expect(row?.sent_at).toBeInstanceOf(Date);
  });

  it('pending → failed', async () => {
    const id = await notification('pending', 'webhook');
    expect(await markNotificationFailed(handle.db, id, 'receiver answered 404')).toMatchObject({
      status: 'failed',
      error: 'receiver answered 404',
    });
  });

  it('pending → read and sent → read (one, then all of the user in-app ones)', async () => {
    const pending = await notification('pending');
    const [one] = await markNotificationsRead(handle.db, { userId, id: pending, projectId: null });
    expect(one).toMatchObject({ id: pending, status: 'read' });
    const sent = await notification('sent');
    const email = await notification('sent', 'email');
    const all = await markNotificationsRead(handle.db, { userId, projectId: null });
    expect(all.map((r) => r.id)).toEqual([sent]);
    expect(await statusOf(email)).toBe('sent');
  });

  it('refuses a transition the table does not allow: read → sent leaves the row as it is', async () => {
    const id = await notification('read');
    expect(await markNotificationSent(handle.db, id)).toBeUndefined();
    expect(await markNotificationFailed(handle.db, id, 'x')).toBeUndefined();
    expect(await statusOf(id)).toBe('read');
  });
});
