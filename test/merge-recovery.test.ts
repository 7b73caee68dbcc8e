import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MERGE_RECOVERY_LOOP } from '../src/mergerequests/index.js';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

/**
 * A merge moves the target branch in git, then records it in the database. A crash between the two
 * leaves the write-ahead intent (mr_merge_intents); the recovery loop completes the merge when the
 * branch holds the intended commit and drops the intent when it does not. The crash itself is
 * reproduced at random by test/faults.test.ts; here the state it leaves is built exactly: the branch
 * swapped with stock git, the intent row as the merge writes it, the database record missing.
 */
describe.skipIf(servicesMissing)('merges interrupted between the branch swap and the record', () => {
  let t: TestPlatform;
  let owner: { id: string; token: string };
  const tmp = tempDir('platform-mr-recovery-');
  let counter = 0;
  const db = () => t.platform.drivers.db.db;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    owner = await t.createUser('mira', ['developer']);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  /** A project with main and an open MR from `feature`; returns shas and the bare repo's path. */
  async function openMr() {
    const name = `rec-${++counter}`;
    const created = await t.request('POST', '/api/projects', {
      token: owner.token,
      body: { name, visibility: 'private' },
    });
    expect(created.status).toBe(201);
    const projectId = created.body.id as string;
    const work = path.join(tmp.dir, name);
    await gitOk(['clone', authUrl(t.baseUrl, 'mira', owner.token, `/mira/${name}.git`), work]);
    const commit = async (file: string, message: string) => {
      writeFileSync(path.join(work, file), `${message}\n`);
      await gitOk(['add', '.'], { cwd: work });
      await gitOk(['commit', '-q', '-m', message], { cwd: work });
      return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
    };
    const base = await commit('README', 'initial');
    await gitOk(['push', '-q', 'origin', 'HEAD:main'], { cwd: work });
    await gitOk(['checkout', '-q', '-b', 'feature'], { cwd: work });
    const head = await commit('feature.txt', 'feature');
    await gitOk(['push', '-q', 'origin', 'feature'], { cwd: work });
    await t.platform.settle();
    const mr = await t.request('POST', `/api/projects/${projectId}/merge-requests`, {
      token: owner.token,
      body: { title: 'Feature', source_branch: 'feature', target_branch: 'main' },
    });
    expect(mr.status).toBe(201);
    await t.platform.settle();
    const projects = t.platform.services.projects;
    const repo = projects.repoDir(await projects.get(projectId));
    const mrRow = await db()
      .selectFrom('merge_requests')
      .select(['id', 'number'])
      .where('project_id', '=', projectId)
      .executeTakeFirstOrThrow();
    return { projectId, repo, base, head, mrId: mrRow.id, number: mrRow.number };
  }

  /** The merge commit the API would publish: main's tree with feature's changes, parents main + feature. */
  async function mergeCommit(repo: string, base: string, head: string) {
    const tree = (await gitOk(['rev-parse', `${head}^{tree}`], { cwd: repo })).trim();
    return (
      await gitOk(['commit-tree', tree, '-p', base, '-p', head, '-m', "Merge branch 'feature' into 'main'"], {
        cwd: repo,
        env: {
          GIT_AUTHOR_NAME: 'mira',
          GIT_AUTHOR_EMAIL: 'mira@example.test',
          GIT_COMMITTER_NAME: 'mira',
          GIT_COMMITTER_EMAIL: 'mira@example.test',
        },
      })
    ).trim();
  }

  /** The intent row as the merge writes it, a minute old (past the recovery's grace period). */
  async function intent(m: Awaited<ReturnType<typeof openMr>>, newSha: string) {
    await db()
      .insertInto('mr_merge_intents')
      .values({
        mr_id: m.mrId,
        project_id: m.projectId,
        target_branch: 'main',
        target_sha: m.base,
        new_sha: newSha,
        head_sha: m.head,
        strategy: 'merge',
        merged_by: owner.id,
        actor: JSON.stringify({ id: owner.id, name: 'mira', ip: '127.0.0.1' }),
        merged_by_name: 'mira',
        created_at: sql<Date>`now() - interval '1 minute'`,
      })
      .execute();
  }

  const mrStatus = async (m: { projectId: string; number: number }) =>
    (
      await t.request('GET', `/api/projects/${m.projectId}/merge-requests/${m.number}`, {
        token: owner.token,
      })
    ).body as { status: string; merge_sha: string | null; merged_by?: unknown };

  it('a merge whose branch swap happened is recorded, audited and announced by the recovery loop', async () => {
    const m = await openMr();
    const merged = await mergeCommit(m.repo, m.base, m.head);
    await gitOk(['update-ref', 'refs/heads/main', merged, m.base], { cwd: m.repo });
    await intent(m, merged);
    const events: string[] = [];
    const off = t.platform.events.on('mr.merged', (e) => {
      events.push(`${e.number} ${e.mergeSha}`);
    });
    const pushes: string[] = [];
    const offPush = t.platform.events.on('push.received', (e) => {
      if (e.projectId === m.projectId) pushes.push(`${e.ref} ${e.before}..${e.after}`);
    });
    try {
      expect(await t.platform.scheduler.runNow(MERGE_RECOVERY_LOOP)).toBe(true);
      await t.platform.settle();
    } finally {
      off();
      offPush();
    }
    const view = await mrStatus(m);
    expect(view.status).toBe('merged');
    expect(view.merge_sha).toBe(merged);
    expect(events).toEqual([`${m.number} ${merged}`]);
    expect(pushes).toEqual([`refs/heads/main ${m.base}..${merged}`]);
    const audit = await db()
      .selectFrom('audit_log')
      .select(['action', 'actor_id', 'detail'])
      .where('action', '=', 'mr.merge')
      .where('project_id', '=', m.projectId)
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]!.actor_id).toBe(owner.id);
    expect(audit[0]!.detail).toMatchObject({ number: m.number, merge_sha: merged, recovered: true });
    expect(await db().selectFrom('mr_merge_intents').selectAll().execute()).toEqual([]);
    // A second pass finds nothing to do: no second event, no second audit row.
    await t.platform.scheduler.runNow(MERGE_RECOVERY_LOOP);
    expect(
      await db()
        .selectFrom('audit_log')
        .select('id')
        .where('action', '=', 'mr.merge')
        .where('project_id', '=', m.projectId)
        .execute(),
    ).toHaveLength(1);
  });

  it('a merge cut before its branch swap leaves the MR open and the intent dropped', async () => {
    const m = await openMr();
    // The merge commit exists as an object, but main was never moved to it.
    const merged = await mergeCommit(m.repo, m.base, m.head);
    await intent(m, merged);
    await t.platform.scheduler.runNow(MERGE_RECOVERY_LOOP);
    expect((await mrStatus(m)).status).toBe('open');
    expect(await db().selectFrom('mr_merge_intents').selectAll().execute()).toEqual([]);
    expect((await gitOk(['rev-parse', 'refs/heads/main'], { cwd: m.repo })).trim()).toBe(m.base);
    // And the MR still merges normally afterwards.
    const res = await t.request('POST', `/api/projects/${m.projectId}/merge-requests/${m.number}/merge`, {
      token: owner.token,
      body: {},
    });
    expect(res.status).toBe(200);
    expect((await mrStatus(m)).status).toBe('merged');
  });

  it('a fresh intent is left alone (a merge in flight on another instance) and a live merge leaves none', async () => {
    const m = await openMr();
    const merged = await mergeCommit(m.repo, m.base, m.head);
    await gitOk(['update-ref', 'refs/heads/main', merged, m.base], { cwd: m.repo });
    await intent(m, merged);
    await db()
      .updateTable('mr_merge_intents')
      .set({ created_at: new Date() })
      .where('mr_id', '=', m.mrId)
      .execute();
    await t.platform.scheduler.runNow(MERGE_RECOVERY_LOOP);
    expect((await mrStatus(m)).status).toBe('open');
    expect(await db().selectFrom('mr_merge_intents').select('mr_id').execute()).toEqual([{ mr_id: m.mrId }]);
    await db().deleteFrom('mr_merge_intents').execute();
    await gitOk(['update-ref', 'refs/heads/main', m.base, merged], { cwd: m.repo });

    const res = await t.request('POST', `/api/projects/${m.projectId}/merge-requests/${m.number}/merge`, {
      token: owner.token,
      body: {},
    });
    expect(res.status).toBe(200);
    expect(await db().selectFrom('mr_merge_intents').selectAll().execute()).toEqual([]);
  });
});
