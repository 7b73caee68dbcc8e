import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../test/helpers/app.js';
import type { DbHandle } from '../store/index.js';
import type { MergeRequestStatus } from '../store/schema.js';
import { closeMergeRequest, recordMerge, recordMergeByPush, reopenMergeRequest } from './transitions.js';

const actor = { id: null, name: 'tester', ip: null };
const sha = (c: string) => c.repeat(40);

describe('merge request status transitions', () => {
  let store: TestStore;
  let handle: DbHandle;
  let userId: string;
  let projectId: string;
  let counter = 0;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    handle = await store.openDb();
    const db = handle.db;
    userId = (
      await db
        .insertInto('users')
        .values({ name: 'maria', email: 'maria@example.test' })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
    projectId = (
      await db
        .insertInto('projects')
        .values({ owner_id: userId, name: 'p', repo_path: 'maria/p.git' })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  });
  afterAll(async () => {
    await handle?.close();
    await store?.drop();
  });

  async function mr(status: MergeRequestStatus) {
    const n = ++counter;
    return (
      await handle.db
        .insertInto('merge_requests')
        .values({
          project_id: projectId,
          number: n,
          title: `mr ${n}`,
          source_branch: `s${n}`,
          target_branch: 'main',
          author_id: userId,
          status,
          head_sha: sha('a'),
          base_sha: sha('b'),
          ...(status === 'closed' ? { closed_at: new Date() } : {}),
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  }
  const row = (id: string) =>
    handle.db.selectFrom('merge_requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const audits = (id: string) =>
    handle.db
      .selectFrom('audit_log')
      .select(['action', 'resource_type', 'project_id'])
      .where('resource_id', '=', id)
      .execute();
  const audit = (action: string) => ({ actor, action, projectId });

  it('open → closed sets closed_at and writes the audit row', async () => {
    const id = await mr('open');
    expect(await closeMergeRequest(handle.db, id, audit('mr.close'))).toEqual({ id, status: 'closed' });
    expect((await row(id)).closed_at).toBeInstanceOf(Date);
    expect(await audits(id)).toEqual([
      { action: 'mr.close', resource_type: 'merge_request', project_id: projectId },
    ]);
  });

  it('closed → open clears closed_at and takes the new head', async () => {
    const id = await mr('closed');
    expect(await reopenMergeRequest(handle.db, id, sha('c'), audit('mr.reopen'))).toEqual({
      id,
      status: 'open',
    });
    expect(await row(id)).toMatchObject({ status: 'open', closed_at: null, head_sha: sha('c') });
    expect((await audits(id)).map((a) => a.action)).toEqual(['mr.reopen']);
  });

  it('open → merged and closed → merged record the merge', async () => {
    for (const from of ['open', 'closed'] as const) {
      const id = await mr(from);
      const merge = {
        strategy: 'squash' as const,
        mergeSha: sha('d'),
        mergedBy: userId,
        headSha: sha('e'),
        baseSha: sha('f'),
      };
      expect(await recordMerge(handle.db, id, merge, audit('mr.merge'))).toEqual({ id, status: 'merged' });
      expect(await row(id)).toMatchObject({
        status: 'merged',
        merge_strategy: 'squash',
        merge_sha: sha('d'),
        merged_by: userId,
        head_sha: sha('e'),
        base_sha: sha('f'),
      });
      expect((await row(id)).merged_at).toBeInstanceOf(Date);
    }
  });

  it('open → merged by a push', async () => {
    const id = await mr('open');
    const done = await recordMergeByPush(
      handle.db,
      id,
      { mergeSha: sha('9'), mergedBy: userId },
      audit('mr.merged_by_push'),
    );
    expect(done).toEqual({ id, status: 'merged' });
    expect(await row(id)).toMatchObject({ status: 'merged', merge_sha: sha('9'), merge_strategy: null });
  });

  it('refuses what the table does not allow, leaving the row and the audit log as they were', async () => {
    const merged = await mr('merged');
    const before = await row(merged);
    expect(await reopenMergeRequest(handle.db, merged, sha('c'), audit('mr.reopen'))).toBeUndefined();
    expect(await closeMergeRequest(handle.db, merged, audit('mr.close'))).toBeUndefined();
    const closed = await mr('closed');
    expect(await closeMergeRequest(handle.db, closed, audit('mr.close'))).toBeUndefined();
    expect(
      await recordMergeByPush(handle.db, closed, { mergeSha: sha('9'), mergedBy: userId }, audit('x')),
    ).toBeUndefined();
    const open = await mr('open');
    expect(await reopenMergeRequest(handle.db, open, sha('c'), audit('mr.reopen'))).toBeUndefined();
    expect(await row(merged)).toEqual(before);
    expect(await row(closed)).toMatchObject({ status: 'closed' });
    expect(await row(open)).toMatchObject({ status: 'open', head_sha: sha('a') });
    for (const id of [merged, closed, open]) expect(await audits(id)).toEqual([]);
  });
});
