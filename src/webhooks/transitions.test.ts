import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../test/helpers/app.js';
import type { DbHandle } from '../store/index.js';
import type { WebhookDeliveryStatus } from '../store/schema.js';
import { finishDeliveryAttempt } from './transitions.js';

describe('webhook delivery status transitions', () => {
  let store: TestStore;
  let handle: DbHandle;
  let webhookId: string;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    handle = await store.openDb();
    const db = handle.db;
    const userId = (
      await db
        .insertInto('users')
        .values({ name: 'walt', email: 'walt@example.test' })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
    const projectId = (
      await db
        .insertInto('projects')
        .values({ owner_id: userId, name: 'p', repo_path: 'walt/p.git' })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
    webhookId = (
      await db
        .insertInto('webhooks')
        .values({ project_id: projectId, url: 'https://example.com/hook', events: ['push'] })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  });
  afterAll(async () => {
    await handle?.close();
    await store?.drop();
  });

  async function attempt(status: WebhookDeliveryStatus) {
    return (
      await handle.db
        .insertInto('webhook_deliveries')
        .values({
          webhook_id: webhookId,
          delivery_id: crypto.randomUUID(),
          event: 'push.received',
          payload: JSON.stringify('{}'),
          status,
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  }
  const rowOf = (id: string) =>
    handle.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  it('pending → success records the answer', async () => {
    const id = await attempt('pending');
    expect(
      await finishDeliveryAttempt(handle.db, id, {
        status: 'success',
        statusCode: 204,
        durationMs: 12,
        error: null,
      }),
    ).toBe(true);
    expect(await rowOf(id)).toMatchObject({
      status: 'success',
      status_code: 204,
      duration_ms: 12,
      error: null,
    });
    expect((await rowOf(id)).finished_at).toBeInstanceOf(Date);
  });

  it('pending → failure records the error', async () => {
    const id = await attempt('pending');
    expect(
      await finishDeliveryAttempt(handle.db, id, {
        status: 'failure',
        statusCode: 500,
        durationMs: 3,
        error: 'receiver answered HTTP 500',
      }),
    ).toBe(true);
    expect(await rowOf(id)).toMatchObject({ status: 'failure', status_code: 500 });
  });

  it('refuses a transition the table does not allow: success → failure changes nothing', async () => {
    const id = await attempt('success');
    expect(
      await finishDeliveryAttempt(handle.db, id, {
        status: 'failure',
        statusCode: null,
        durationMs: 1,
        error: 'x',
      }),
    ).toBe(false);
    expect(await rowOf(id)).toMatchObject({ status: 'success', error: null });
  });
});
