import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainEvents, EventName } from '../src/core/events.js';
import { createTestPlatform, insertProject, servicesMissing, type TestPlatform } from './helpers/app.js';

interface User {
  id: string;
  token: string;
}

describe.skipIf(servicesMissing)('issues and comments', () => {
  let t: TestPlatform;
  /** Owner of every project below (owners hold every project permission on their projects). */
  let olga: User;
  /** Developers bound to the private project. */
  let dan: User;
  let dora: User;
  /** Viewer bound to the private project: reads, cannot write. */
  let vic: User;
  /** A developer on another project only: a non-member of `priv` and `intl`. */
  let nina: User;
  let priv: string;
  let intl: string;
  let other: string;
  const events: { name: EventName; payload: DomainEvents[EventName] }[] = [];

  const api = (p: string) => `/api/projects/${p}`;
  const createIssue = (project: string, token: string, body: Record<string, unknown>) =>
    t.request('POST', `${api(project)}/issues`, { token, body });
  const addMember = async (project: string, user: User, role: string) => {
    const res = await t.request('POST', `${api(project)}/members`, {
      token: t.adminToken,
      body: { user_id: user.id, role },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  };
  const emitted = async <K extends EventName>(name: K) => {
    await t.platform.settle();
    return events.filter((e) => e.name === name).map((e) => e.payload as DomainEvents[K]);
  };
  const expectError = (
    res: { status: number; body: unknown },
    status: number,
    code: string,
    reason?: string,
  ) => {
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    expect(res.body).toEqual({
      error: { code, ...(reason ? { reason } : {}), message: expect.any(String), details: expect.any(Array) },
    });
  };

  beforeAll(async () => {
    t = await createTestPlatform();
    olga = await t.createUser('olga');
    dan = await t.createUser('dan');
    dora = await t.createUser('dora');
    vic = await t.createUser('vic');
    nina = await t.createUser('nina');
    priv = await insertProject(t, { name: 'priv', ownerId: olga.id, visibility: 'private' });
    intl = await insertProject(t, { name: 'intl', ownerId: olga.id, visibility: 'internal' });
    other = await insertProject(t, { name: 'other', ownerId: olga.id, visibility: 'private' });
    await addMember(priv, dan, 'developer');
    await addMember(priv, dora, 'developer');
    await addMember(priv, vic, 'viewer');
    await addMember(other, nina, 'developer');
    t.platform.events.onAny((name, payload) => {
      events.push({ name, payload });
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  describe('issues', () => {
    it('creates an issue: 201, number 1, normalised labels, names, one audit row without the body', async () => {
      const res = await createIssue(priv, dan.token, {
        title: '  Login fails  ',
        body: 'Steps: **secret-ish body text**',
        labels: [' bug ', 'bug', 'ui', 'bug'],
        assignee_id: dora.id,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({
        project_id: priv,
        number: 1,
        title: 'Login fails',
        body: 'Steps: **secret-ish body text**',
        status: 'open',
        labels: ['bug', 'ui'],
        author_id: dan.id,
        author: 'dan',
        assignee_id: dora.id,
        assignee: 'dora',
        closed_at: null,
        closed_by: null,
        comment_count: 0,
      });
      const audit = await t.platform.drivers.db.db
        .selectFrom('audit_log')
        .selectAll()
        .where('action', '=', 'issue.create')
        .where('resource_id', '=', res.body.id)
        .execute();
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ actor_id: dan.id, project_id: priv, resource_type: 'issue' });
      expect(audit[0]!.detail).toEqual({ number: 1, title: 'Login fails' });
      expect(JSON.stringify(audit[0]!.detail)).not.toContain('secret-ish');
    });

    it('gets an issue by number with names and comment count; unknown or bad numbers are 404/400', async () => {
      const res = await t.request('GET', `${api(priv)}/issues/1`, { token: vic.token });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ number: 1, author: 'dan', assignee: 'dora', comment_count: 0 });
      expectError(await t.request('GET', `${api(priv)}/issues/999`, { token: dan.token }), 404, 'not_found');
      for (const bad of ['abc', '0', '-1', '1.5', '99999999999']) {
        const r = await t.request('GET', `${api(priv)}/issues/${bad}`, { token: dan.token });
        expectError(r, 400, 'bad_request');
      }
    });

    it('the IssuesService finds issues by number for other modules', async () => {
      const issues = t.platform.services.issues;
      expect((await issues.findByNumber(priv, 1))?.title).toBe('Login fails');
      expect(await issues.findByNumber(priv, 404)).toBeUndefined();
    });

    it('rejects bad input with 4xx and the stable body, writing nothing', async () => {
      const before = await t.auditCount();
      for (const body of [
        {},
        { title: '' },
        { title: '   ' },
        { title: 'x'.repeat(256) },
        { title: 'ok', labels: Array.from({ length: 21 }, (_, i) => `l${i}`) },
        { title: 'ok', labels: [''] },
        { title: 'ok', labels: ['   '] },
        { title: 'ok', labels: ['x'.repeat(51)] },
        { title: 'ok', labels: ['a\u0007b'] },
        { title: 'ok', labels: 'bug' },
        { title: 'ok', assignee_id: 'not-a-uuid' },
        { title: 'ok', body: 'x'.repeat(65_537) },
      ]) {
        expectError(await createIssue(priv, dan.token, body), 400, 'bad_request');
      }
      const tooMany = await createIssue(priv, dan.token, {
        title: 'ok',
        labels: Array.from({ length: 21 }, (_, i) => `l${i}`),
      });
      expect(tooMany.body.error.details.map((d: { path: string }) => d.path)).toContain('body.labels');
      expect(await t.auditCount()).toBe(before);
    });

    it('labels: at most 20 distinct, duplicates do not count; 50 characters allowed', async () => {
      const labels = [...Array.from({ length: 20 }, (_, i) => `l${i}`), 'l0', ' l1 ', 'x'.repeat(50)];
      const tooMany = await createIssue(priv, dan.token, { title: 'labels', labels });
      expectError(tooMany, 400, 'bad_request');
      const ok = await createIssue(priv, dan.token, {
        title: 'labels',
        labels: [...Array.from({ length: 20 }, (_, i) => `l${i}`), 'l0', ' l19 '],
      });
      expect(ok.status).toBe(201);
      expect(ok.body.labels).toHaveLength(20);
      expect(ok.body.labels[0]).toBe('l0');
    });

    it('the assignee must exist, be active and be able to read the project, else 422 naming them', async () => {
      const cannot = await createIssue(priv, dan.token, { title: 'assign nina', assignee_id: nina.id });
      expectError(cannot, 422, 'unprocessable', 'issue.not_assignable');
      expect(cannot.body.error.message).toContain('nina');
      expect(cannot.body.error.details[0].path).toBe('body.assignee_id');

      const unknown = '00000000-0000-4000-8000-000000000000';
      const missing = await createIssue(priv, dan.token, { title: 'assign ghost', assignee_id: unknown });
      expectError(missing, 422, 'unprocessable', 'issue.not_assignable');
      expect(missing.body.error.message).toContain(unknown);

      const gone = await t.createUser('gone');
      await addMember(priv, gone, 'developer');
      expect((await t.request('DELETE', `/api/users/${gone.id}`, { token: t.adminToken })).status).toBe(204);
      const inactive = await createIssue(priv, dan.token, { title: 'assign gone', assignee_id: gone.id });
      expectError(inactive, 422, 'unprocessable', 'issue.not_assignable');
      expect(inactive.body.error.message).toContain('gone');

      const patch = await t.request('PATCH', `${api(priv)}/issues/1`, {
        token: dan.token,
        body: { assignee_id: nina.id },
      });
      expectError(patch, 422, 'unprocessable', 'issue.not_assignable');
      expect((await t.request('GET', `${api(priv)}/issues/1`, { token: dan.token })).body.assignee).toBe(
        'dora',
      );

      // A viewer can read, so can be assigned; anyone signed in can read an internal project.
      const viewer = await createIssue(priv, dan.token, { title: 'assign vic', assignee_id: vic.id });
      expect(viewer.status).toBe(201);
      const internal = await createIssue(intl, olga.token, { title: 'assign nina', assignee_id: nina.id });
      expect(internal.status, JSON.stringify(internal.body)).toBe(201);
      expect(internal.body.assignee).toBe('nina');
    });

    it('patches title, body, labels and assignee; unassigns with null; a no-op patch changes nothing', async () => {
      const created = await createIssue(priv, dan.token, { title: 'to edit', labels: ['a'] });
      const n = created.body.number;
      const res = await t.request('PATCH', `${api(priv)}/issues/${n}`, {
        token: dora.token,
        body: { title: 'edited', body: 'new body', labels: ['b', ' a ', 'b'], assignee_id: dan.id },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({
        title: 'edited',
        body: 'new body',
        labels: ['b', 'a'],
        assignee: 'dan',
        author: 'dan',
      });
      const audit = await t.platform.drivers.db.db
        .selectFrom('audit_log')
        .select('detail')
        .where('action', '=', 'issue.update')
        .where('resource_id', '=', created.body.id)
        .executeTakeFirstOrThrow();
      expect(audit.detail).toEqual({
        number: n,
        title: 'edited',
        fields: ['title', 'body', 'labels', 'assignee_id'],
      });
      const unassigned = await t.request('PATCH', `${api(priv)}/issues/${n}`, {
        token: dora.token,
        body: { assignee_id: null },
      });
      expect(unassigned.body).toMatchObject({ assignee_id: null, assignee: null });
      const noop = await t.request('PATCH', `${api(priv)}/issues/${n}`, {
        token: dora.token,
        body: { title: 'edited' },
      });
      expect(noop.status).toBe(200);
      expect(noop.body.updated_at).toBe(unassigned.body.updated_at);
      expectError(
        await t.request('PATCH', `${api(priv)}/issues/${n}`, { token: dora.token, body: { title: ' ' } }),
        400,
        'bad_request',
      );
      expectError(
        await t.request('PATCH', `${api(priv)}/issues/${n}`, {
          token: dora.token,
          body: { status: 'merged' },
        }),
        400,
        'bad_request',
      );
      expectError(
        await t.request('PATCH', `${api(priv)}/issues/4242`, { token: dora.token, body: { title: 'x' } }),
        404,
        'not_found',
      );
    });

    it('closing sets closed_at/closed_by, closing again changes nothing, reopening clears them', async () => {
      const created = await createIssue(priv, dan.token, { title: 'to close' });
      const url = `${api(priv)}/issues/${created.body.number}`;
      const closed = await t.request('PATCH', url, { token: dora.token, body: { status: 'closed' } });
      expect(closed.status).toBe(200);
      expect(closed.body).toMatchObject({ status: 'closed', closed_by: dora.id });
      expect(new Date(closed.body.closed_at).getTime()).toBeGreaterThanOrEqual(
        new Date(created.body.created_at).getTime(),
      );
      const again = await t.request('PATCH', url, { token: dan.token, body: { status: 'closed' } });
      expect(again.body).toMatchObject({
        status: 'closed',
        closed_by: dora.id,
        closed_at: closed.body.closed_at,
      });
      const reopened = await t.request('PATCH', url, { token: dan.token, body: { status: 'open' } });
      expect(reopened.body).toMatchObject({ status: 'open', closed_at: null, closed_by: null });
      const row = await t.platform.drivers.db.db
        .selectFrom('issues')
        .select(['status', 'closed_at', 'closed_by'])
        .where('id', '=', created.body.id)
        .executeTakeFirstOrThrow();
      expect(row).toEqual({ status: 'open', closed_at: null, closed_by: null });
    });
  });

  describe('listing', () => {
    let project: string;
    const titles = (res: { body: { items: { title: string }[] } }) => res.body.items.map((i) => i.title);

    beforeAll(async () => {
      project = await insertProject(t, { name: 'listing', ownerId: olga.id, visibility: 'internal' });
      await addMember(project, dan, 'developer');
      const make = async (token: string, body: Record<string, unknown>) => {
        const res = await createIssue(project, token, body);
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        return res.body;
      };
      await make(olga.token, { title: 'Crash on start', body: 'stack trace', labels: ['bug'] });
      await make(dan.token, { title: 'Add dark mode', labels: ['feature', 'ui'], assignee_id: olga.id });
      const closed = await make(dan.token, { title: 'Typo in README', labels: ['docs'] });
      await make(olga.token, {
        title: 'Progress at 100%',
        body: 'shows 100% too early',
        assignee_id: dan.id,
      });
      await make(olga.token, { title: 'Progress at 1000', body: 'snake_case name' });
      const res = await t.request('PATCH', `${api(project)}/issues/${closed.number}`, {
        token: dan.token,
        body: { status: 'closed' },
      });
      expect(res.status).toBe(200);
    });

    const list = (query = '') => t.request('GET', `${api(project)}/issues${query}`, { token: nina.token });

    it('newest first, open by default; status closed and all', async () => {
      expect(titles(await list())).toEqual([
        'Progress at 1000',
        'Progress at 100%',
        'Add dark mode',
        'Crash on start',
      ]);
      expect(titles(await list('?status=closed'))).toEqual(['Typo in README']);
      const all = await list('?status=all');
      expect(all.body.items.map((i: { number: number }) => i.number)).toEqual([5, 4, 3, 2, 1]);
      expect(all.body.next_cursor).toBeNull();
      expectError(await list('?status=merged'), 400, 'bad_request');
    });

    it('filters by label, assignee (name or none), author and text (ILIKE, wildcards literal)', async () => {
      expect(titles(await list('?label=ui'))).toEqual(['Add dark mode']);
      expect(titles(await list('?label=docs&status=all'))).toEqual(['Typo in README']);
      expect(titles(await list('?label=nope'))).toEqual([]);
      expect(titles(await list('?assignee=olga'))).toEqual(['Add dark mode']);
      expect(titles(await list('?assignee=dan'))).toEqual(['Progress at 100%']);
      expect(titles(await list('?assignee=none'))).toEqual(['Progress at 1000', 'Crash on start']);
      expect(titles(await list('?author=dan&status=all'))).toEqual(['Typo in README', 'Add dark mode']);
      expect(titles(await list('?author=nobody'))).toEqual([]);
      expect(titles(await list('?q=dark'))).toEqual(['Add dark mode']);
      expect(titles(await list('?q=STACK'))).toEqual(['Crash on start']);
      expect(titles(await list(`?q=${encodeURIComponent('100%')}`))).toEqual(['Progress at 100%']);
      expect(titles(await list('?q=e_c'))).toEqual(['Progress at 1000']);
      expect(titles(await list('?q=progress&author=olga&assignee=none'))).toEqual(['Progress at 1000']);
    });

    it('paginates with a cursor and no overlap; a forged cursor is 400', async () => {
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await list(`?status=all&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        expect(res.status).toBe(200);
        expect(res.body.items.length).toBeLessThanOrEqual(2);
        seen.push(...res.body.items.map((i: { number: number }) => i.number));
        cursor = res.body.next_cursor;
        pages++;
      } while (cursor);
      expect(seen).toEqual([5, 4, 3, 2, 1]);
      expect(pages).toBe(3);
      for (const forged of ['garbage', Buffer.from('["x"]').toString('base64url')]) {
        expectError(await list(`?cursor=${forged}`), 400, 'bad_request');
      }
      expectError(await list('?limit=0'), 400, 'bad_request');
    });
  });

  describe('numbering', () => {
    it('100 concurrent creations get the numbers 1..100 exactly once; another project numbers on its own', async () => {
      const busy = await insertProject(t, { name: 'busy', ownerId: olga.id });
      const quiet = await insertProject(t, { name: 'quiet', ownerId: olga.id });
      const before = await t.auditCount();
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          t.request('POST', `${api(busy)}/issues`, {
            token: olga.token,
            body: { title: `concurrent ${i}` },
            noAuditCheck: true,
          }),
        ),
      );
      for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(201);
      const numbers = results.map((r) => r.body.number as number).sort((a, b) => a - b);
      expect(numbers).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(await t.auditCount()).toBe(before + 100);
      const project = await t.platform.drivers.db.db
        .selectFrom('projects')
        .select('next_issue_number')
        .where('id', '=', busy)
        .executeTakeFirstOrThrow();
      expect(project.next_issue_number).toBe(101);
      const first = await createIssue(quiet, olga.token, { title: 'first' });
      expect(first.body.number).toBe(1);
    });
  });

  describe('comments', () => {
    let issueNumber: number;
    let mrNumber: number;

    beforeAll(async () => {
      const issue = await createIssue(priv, dan.token, { title: 'discuss' });
      issueNumber = issue.body.number;
      await t.platform.drivers.db.db
        .insertInto('merge_requests')
        .values({
          project_id: priv,
          number: 7,
          title: 'Feature branch',
          source_branch: 'feature',
          target_branch: 'main',
          author_id: dan.id,
        })
        .execute();
      mrNumber = 7;
    });

    for (const target of ['issues', 'merge-requests'] as const) {
      describe(`on ${target}`, () => {
        const base = () => `${api(priv)}/${target}/${target === 'issues' ? issueNumber : mrNumber}/comments`;

        it('create, list oldest first with a cursor, edit and delete by the author', async () => {
          const ids: string[] = [];
          for (const body of ['first **one**', 'second', 'third']) {
            const res = await t.request('POST', base(), { token: dan.token, body: { body } });
            expect(res.status, JSON.stringify(res.body)).toBe(201);
            expect(res.body).toMatchObject({ body, author: 'dan', author_id: dan.id, project_id: priv });
            ids.push(res.body.id);
          }
          const page1 = await t.request('GET', `${base()}?limit=2`, { token: vic.token });
          expect(page1.body.items.map((c: { id: string }) => c.id)).toEqual(ids.slice(0, 2));
          expect(page1.body.next_cursor).toEqual(expect.any(String));
          const page2 = await t.request(
            'GET',
            `${base()}?limit=2&cursor=${encodeURIComponent(page1.body.next_cursor)}`,
            { token: vic.token },
          );
          expect(page2.body.items.map((c: { id: string }) => c.id)).toEqual(ids.slice(2));
          expect(page2.body.next_cursor).toBeNull();

          const edited = await t.request('PATCH', `${base()}/${ids[0]}`, {
            token: dan.token,
            body: { body: 'first, edited' },
          });
          expect(edited.status).toBe(200);
          expect(edited.body).toMatchObject({ id: ids[0], body: 'first, edited' });
          expect((await t.request('DELETE', `${base()}/${ids[1]}`, { token: dan.token })).status).toBe(204);
          const after = await t.request('GET', base(), { token: dan.token });
          expect(after.body.items.map((c: { body: string }) => c.body)).toEqual(['first, edited', 'third']);
          if (target === 'issues') {
            const issue = await t.request('GET', `${api(priv)}/issues/${issueNumber}`, { token: dan.token });
            expect(issue.body.comment_count).toBe(2);
          }
          const rows = await t.platform.drivers.db.db
            .selectFrom('audit_log')
            .select(['action', 'detail'])
            .where('resource_type', '=', 'comment')
            .where('resource_id', 'in', ids)
            .execute();
          expect(rows.map((r) => r.action).sort()).toEqual([
            'comment.create',
            'comment.create',
            'comment.create',
            'comment.delete',
            'comment.update',
          ]);
          for (const r of rows) expect(JSON.stringify(r.detail)).not.toMatch(/first|second|third/);
        });

        it('another developer gets 403 on edit and delete; an admin may do both', async () => {
          const res = await t.request('POST', base(), { token: dan.token, body: { body: 'mine' } });
          const url = `${base()}/${res.body.id}`;
          expectError(
            await t.request('PATCH', url, { token: dora.token, body: { body: 'hijack' } }),
            403,
            'forbidden',
            'issue.not_comment_author',
          );
          expectError(
            await t.request('DELETE', url, { token: dora.token }),
            403,
            'forbidden',
            'issue.not_comment_author',
          );
          const byAdmin = await t.request('PATCH', url, { token: t.adminToken, body: { body: 'moderated' } });
          expect(byAdmin.status).toBe(200);
          expect(byAdmin.body).toMatchObject({ body: 'moderated', author: 'dan' });
          expect((await t.request('DELETE', url, { token: t.adminToken })).status).toBe(204);
          expectError(await t.request('DELETE', url, { token: t.adminToken }), 404, 'not_found');
        });

        it('bad input: blank or oversized bodies 400, unknown parent or comment 404', async () => {
          for (const body of [
            {},
            { body: '' },
            { body: '  \n ' },
            { body: 'x'.repeat(65_537) },
            { body: 3 },
          ]) {
            expectError(await t.request('POST', base(), { token: dan.token, body }), 400, 'bad_request');
          }
          const max = await t.request('POST', base(), {
            token: dan.token,
            body: { body: 'y'.repeat(65_536) },
          });
          expect(max.status).toBe(201);
          const unknownParent = `${api(priv)}/${target}/999/comments`;
          expectError(await t.request('GET', unknownParent, { token: dan.token }), 404, 'not_found');
          expectError(
            await t.request('POST', unknownParent, { token: dan.token, body: { body: 'x' } }),
            404,
            'not_found',
          );
          expectError(
            await t.request('PATCH', `${base()}/00000000-0000-4000-8000-000000000000`, {
              token: dan.token,
              body: { body: 'x' },
            }),
            404,
            'not_found',
          );
          expectError(
            await t.request('GET', `${base()}?cursor=garbage`, { token: dan.token }),
            400,
            'bad_request',
          );
          const forged = Buffer.from('["2024-01-01T00:00:00.000Z","00000000-0000-4000-8000-000000000000"]');
          expectError(
            await t.request('GET', `${base()}?cursor=${forged.toString('base64url')}`, { token: dan.token }),
            400,
            'bad_request',
          );
        });
      });
    }

    it('the comment cursor keeps microseconds: comments within one millisecond are neither repeated nor skipped', async () => {
      const issue = await createIssue(priv, dan.token, { title: 'busy thread' });
      const stamps = ['000300', '000100', '000200', '000900'].map((us) => `2024-05-01T10:00:00.${us}Z`);
      await t.platform.drivers.db.db
        .insertInto('comments')
        .values(
          stamps.map((created_at, i) => ({
            project_id: priv,
            issue_id: issue.body.id,
            author_id: dan.id,
            body: `c${i}`,
            created_at,
          })),
        )
        .execute();
      const bodies: string[] = [];
      let cursor: string | null = null;
      do {
        const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const res = await t.request<{ items: { body: string }[]; next_cursor: string | null }>(
          'GET',
          `${api(priv)}/issues/${issue.body.number}/comments?limit=1${q}`,
          {
            token: dan.token,
          },
        );
        expect(res.status).toBe(200);
        bodies.push(...res.body.items.map((c) => c.body));
        cursor = res.body.next_cursor;
      } while (cursor && bodies.length < 10);
      expect(bodies).toEqual(['c1', 'c2', 'c0', 'c3']);
    });

    it('a comment is reachable only through its own parent', async () => {
      const res = await t.request('POST', `${api(priv)}/issues/${issueNumber}/comments`, {
        token: dan.token,
        body: { body: 'on the issue' },
      });
      const wrong = `${api(priv)}/merge-requests/${mrNumber}/comments/${res.body.id}`;
      expectError(await t.request('DELETE', wrong, { token: dan.token }), 404, 'not_found');
      const wrongProject = `${api(intl)}/issues/${issueNumber}/comments/${res.body.id}`;
      expectError(await t.request('DELETE', wrongProject, { token: t.adminToken }), 404, 'not_found');
    });
  });

  describe('permissions', () => {
    it('private project: a non-member gets 404 on every read and write route; anonymous too', async () => {
      await t.request('POST', `${api(priv)}/merge-requests/7/comments`, {
        token: dan.token,
        body: { body: 'exists' },
      });
      const comment = await t.request('POST', `${api(priv)}/issues/1/comments`, {
        token: dan.token,
        body: { body: 'exists' },
      });
      const reads = [
        `${api(priv)}/issues`,
        `${api(priv)}/issues/1`,
        `${api(priv)}/issues/1/comments`,
        `${api(priv)}/merge-requests/7/comments`,
      ];
      for (const url of reads) {
        expect((await t.request('GET', url, { token: dan.token })).status, url).toBe(200);
        expectError(await t.request('GET', url, { token: nina.token }), 404, 'not_found');
        expectError(await t.request('GET', url), 404, 'not_found');
      }
      const writes: [string, string, unknown][] = [
        ['POST', `${api(priv)}/issues`, { title: 'x' }],
        ['PATCH', `${api(priv)}/issues/1`, { title: 'x' }],
        ['POST', `${api(priv)}/issues/1/comments`, { body: 'x' }],
        ['PATCH', `${api(priv)}/issues/1/comments/${comment.body.id}`, { body: 'x' }],
        ['DELETE', `${api(priv)}/issues/1/comments/${comment.body.id}`, undefined],
        ['POST', `${api(priv)}/merge-requests/7/comments`, { body: 'x' }],
      ];
      for (const [method, url, body] of writes) {
        expectError(await t.request(method, url, { token: nina.token, body }), 404, 'not_found');
      }
    });

    it('a project reader (viewer member) can read but gets 403 on every write', async () => {
      expect((await t.request('GET', `${api(priv)}/issues/1`, { token: vic.token })).status).toBe(200);
      expectError(await createIssue(priv, vic.token, { title: 'x' }), 403, 'forbidden');
      expectError(
        await t.request('PATCH', `${api(priv)}/issues/1`, { token: vic.token, body: { status: 'closed' } }),
        403,
        'forbidden',
      );
      expectError(
        await t.request('POST', `${api(priv)}/issues/1/comments`, { token: vic.token, body: { body: 'x' } }),
        403,
        'forbidden',
      );
    });

    it('internal project: a non-member developer can read but gets 403 on create, patch and comment', async () => {
      const issue = await createIssue(intl, olga.token, { title: 'internal issue' });
      const n = issue.body.number;
      expect((await t.request('GET', `${api(intl)}/issues`, { token: nina.token })).status).toBe(200);
      expect((await t.request('GET', `${api(intl)}/issues/${n}`, { token: nina.token })).body.title).toBe(
        'internal issue',
      );
      expect(
        (await t.request('GET', `${api(intl)}/issues/${n}/comments`, { token: nina.token })).status,
      ).toBe(200);
      expectError(await createIssue(intl, nina.token, { title: 'x' }), 403, 'forbidden');
      expectError(
        await t.request('PATCH', `${api(intl)}/issues/${n}`, { token: nina.token, body: { title: 'x' } }),
        403,
        'forbidden',
      );
      expectError(
        await t.request('POST', `${api(intl)}/issues/${n}/comments`, {
          token: nina.token,
          body: { body: 'x' },
        }),
        403,
        'forbidden',
      );
      // Anonymous callers do not see internal projects.
      expectError(await t.request('GET', `${api(intl)}/issues`), 404, 'not_found');
    });
  });

  describe('events', () => {
    it('issue.opened and issue.assigned (not for self-assignment) after the commit', async () => {
      const res = await createIssue(priv, dan.token, {
        title: 'evented',
        body: 'the body',
        labels: ['x'],
        assignee_id: dora.id,
      });
      const opened = (await emitted('issue.opened')).find((e) => e.issueId === res.body.id);
      expect(opened).toEqual({
        projectId: priv,
        project: 'olga/priv',
        issueId: res.body.id,
        number: res.body.number,
        title: 'evented',
        status: 'open',
        labels: ['x'],
        authorId: dan.id,
        assigneeId: dora.id,
        actorId: dan.id,
        url: `${t.config.public_url}/api/projects/${priv}/issues/${res.body.number}`,
        body: 'the body',
      });
      const assigned = (await emitted('issue.assigned')).filter((e) => e.issueId === res.body.id);
      expect(assigned).toEqual([
        {
          projectId: priv,
          issueId: res.body.id,
          number: res.body.number,
          title: 'evented',
          assigneeId: dora.id,
          assignedBy: dan.id,
        },
      ]);
      const self = await createIssue(priv, dan.token, { title: 'mine', assignee_id: dan.id });
      expect((await emitted('issue.assigned')).filter((e) => e.issueId === self.body.id)).toEqual([]);
    });

    it('issue.updated names the changed fields; close and reopen emit issue.closed / issue.reopened', async () => {
      const res = await createIssue(priv, dan.token, { title: 'lifecycle' });
      const url = `${api(priv)}/issues/${res.body.number}`;
      const id = res.body.id;
      await t.request('PATCH', url, { token: dora.token, body: { title: 'lifecycle 2', labels: ['l'] } });
      await t.request('PATCH', url, { token: dora.token, body: { status: 'closed' } });
      await t.request('PATCH', url, { token: dora.token, body: { status: 'closed' } });
      await t.request('PATCH', url, { token: dan.token, body: { status: 'open', assignee_id: dora.id } });
      const updated = (await emitted('issue.updated')).filter((e) => e.issueId === id);
      expect(updated.map((e) => [e.changes, e.actorId])).toEqual([
        [['title', 'labels'], dora.id],
        [['assignee_id'], dan.id],
      ]);
      expect(updated[0]).toMatchObject({
        projectId: priv,
        title: 'lifecycle 2',
        labels: ['l'],
        status: 'open',
      });
      const closed = (await emitted('issue.closed')).filter((e) => e.issueId === id);
      expect(closed).toHaveLength(1);
      expect(closed[0]).toMatchObject({
        projectId: priv,
        status: 'closed',
        actorId: dora.id,
        number: res.body.number,
      });
      const reopened = (await emitted('issue.reopened')).filter((e) => e.issueId === id);
      expect(reopened).toHaveLength(1);
      expect(reopened[0]).toMatchObject({ projectId: priv, status: 'open', actorId: dan.id });
      const assigned = (await emitted('issue.assigned')).filter((e) => e.issueId === id);
      expect(assigned).toEqual([expect.objectContaining({ assigneeId: dora.id, assignedBy: dan.id })]);
    });

    it('issue.commented and mr.commented carry the comment and the parent', async () => {
      const issue = await createIssue(priv, dan.token, { title: 'comment events' });
      const c1 = await t.request('POST', `${api(priv)}/issues/${issue.body.number}/comments`, {
        token: dora.token,
        body: { body: 'looks good' },
      });
      const ic = (await emitted('issue.commented')).find((e) => e.commentId === c1.body.id);
      expect(ic).toMatchObject({
        projectId: priv,
        issueId: issue.body.id,
        number: issue.body.number,
        title: 'comment events',
        status: 'open',
        body: 'looks good',
        actorId: dora.id,
        authorId: dan.id,
      });
      const c2 = await t.request('POST', `${api(priv)}/merge-requests/7/comments`, {
        token: dora.token,
        body: { body: 'ship it' },
      });
      const mc = (await emitted('mr.commented')).find((e) => e.commentId === c2.body.id);
      expect(mc).toEqual({
        projectId: priv,
        project: 'olga/priv',
        mergeRequestId: expect.any(String),
        number: 7,
        title: 'Feature branch',
        status: 'open',
        commentId: c2.body.id,
        body: 'ship it',
        actorId: dora.id,
        url: `${t.config.public_url}/api/projects/${priv}/merge-requests/7`,
      });
      expect((await emitted('issue.commented')).some((e) => e.commentId === c2.body.id)).toBe(false);
    });

    it('failed mutations emit nothing', async () => {
      const count = events.length;
      await createIssue(priv, nina.token, { title: 'x' });
      await createIssue(priv, dan.token, { title: 'x', assignee_id: nina.id });
      await t.request('PATCH', `${api(priv)}/issues/1`, { token: vic.token, body: { status: 'closed' } });
      await t.platform.settle();
      expect(events.length).toBe(count);
      const rows = await sql<{ n: number }>`select count(*)::int as n from issues where title = 'x'`.execute(
        t.platform.drivers.db.db,
      );
      expect(rows.rows[0]!.n).toBe(0);
    });
  });
});
