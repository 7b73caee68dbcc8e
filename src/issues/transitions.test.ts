import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../test/helpers/app.js';
import type { DbHandle } from '../store/index.js';
import { type IssueStatus, issueStatusTransitions } from '../store/schema.js';
import { issueStatusSources, transitionIssueStatus } from './transitions.js';

describe('issue status transitions (the one writer of issues.status)', () => {
  let store: TestStore;
  let handle: DbHandle;
  let actor: { id: string; name: string; ip: string | null };
  let projectId: string;
  let issueCount = 0;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    handle = await store.openDb();
    const user = await handle.db
      .insertInto('users')
      .values({ name: 'tess', email: 'tess@example.test', user_type: 'human' })
      .returning(['id', 'name'])
      .executeTakeFirstOrThrow();
    actor = { id: user.id, name: user.name, ip: null };
    const project = await handle.db
      .insertInto('projects')
      .values({ owner_id: user.id, name: 'flow', repo_path: 'repos/tess/flow.git' })
      .returning('id')
      .executeTakeFirstOrThrow();
    projectId = project.id;
  });
  afterAll(async () => {
    await handle?.close();
    await store?.drop();
  });

  async function issueIn(status: IssueStatus) {
    issueCount += 1;
    return handle.db
      .insertInto('issues')
      .values({
        project_id: projectId,
        number: issueCount,
        title: `issue ${issueCount}`,
        author_id: actor.id,
        status,
        ...(status === 'closed' ? { closed_at: new Date(), closed_by: actor.id } : {}),
      })
      .returning(['id', 'project_id', 'number', 'title'])
      .executeTakeFirstOrThrow();
  }

  const row = (id: string) =>
    handle.db
      .selectFrom('issues')
      .select(['status', 'closed_at', 'closed_by'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
  const audits = (id: string) =>
    handle.db.selectFrom('audit_log').select(['action', 'detail']).where('resource_id', '=', id).execute();

  it('the table is open → closed and closed → open; sources are derived from it', () => {
    expect(issueStatusTransitions).toEqual({ open: ['closed'], closed: ['open'] });
    expect(issueStatusSources('closed')).toEqual(['open']);
    expect(issueStatusSources('open')).toEqual(['closed']);
  });

  it('open → closed records who and when, with one audit row', async () => {
    const issue = await issueIn('open');
    const result = await handle.db
      .transaction()
      .execute((trx) => transitionIssueStatus(trx, { issue, to: 'closed', actor, alsoChanged: ['title'] }));
    expect(result).toEqual({ status: 'closed' });
    const after = await row(issue.id);
    expect(after).toMatchObject({ status: 'closed', closed_by: actor.id });
    expect(after.closed_at).toBeInstanceOf(Date);
    expect(await audits(issue.id)).toEqual([
      {
        action: 'issue.update',
        detail: { number: issue.number, title: issue.title, fields: ['title', 'status'], status: 'closed' },
      },
    ]);
  });

  it('closed → open clears closed_at and closed_by, with one audit row', async () => {
    const issue = await issueIn('closed');
    await handle.db.transaction().execute((trx) => transitionIssueStatus(trx, { issue, to: 'open', actor }));
    expect(await row(issue.id)).toEqual({ status: 'open', closed_at: null, closed_by: null });
    expect(await audits(issue.id)).toEqual([
      {
        action: 'issue.update',
        detail: { number: issue.number, title: issue.title, fields: ['status'], status: 'open' },
      },
    ]);
  });

  it('refuses a change outside the table (closed → closed) with 409, the current status and the reason; nothing is written', async () => {
    const issue = await issueIn('closed');
    const before = await row(issue.id);
    const refused = handle.db
      .transaction()
      .execute((trx) => transitionIssueStatus(trx, { issue, to: 'closed', actor }));
    await expect(refused).rejects.toMatchObject({
      status: 409,
      code: 'conflict',
      reason: 'issue.invalid_transition',
      details: [{ status: 'closed' }],
    });
    expect(await row(issue.id)).toEqual(before);
    expect(await audits(issue.id)).toEqual([]);
  });
});
