import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, git, gitOk, tempDir } from './helpers/git.js';

interface User {
  id: string;
  token: string;
}

describe.skipIf(servicesMissing)('merge requests', () => {
  let t: TestPlatform;
  let base: string;
  let owner: User;
  let reviewer: User;
  let outsider: User;
  const tmp = tempDir('platform-mr-');
  let counter = 0;

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true });
    base = t.baseUrl;
    owner = await t.createUser('maria', ['developer']);
    reviewer = await t.createUser('rob', ['developer']);
    // No global role: reads internal projects as any signed-in user does, nothing else.
    outsider = await t.createUser('otto', []);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  /** A project with `main` holding README and a working clone to make branches in. */
  async function project(opts: { visibility?: string } = {}) {
    const name = `mr-${++counter}`;
    const res = await t.request('POST', '/api/projects', {
      token: owner.token,
      body: { name, visibility: opts.visibility ?? 'internal' },
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const url = authUrl(base, 'maria', owner.token, `/maria/${name}.git`);
    const work = path.join(tmp.dir, name);
    await gitOk(['clone', url, work]);
    writeFileSync(path.join(work, 'README'), 'line 1\nline 2\nline 3\n');
    await gitOk(['add', '.'], { cwd: work });
    await gitOk(['commit', '-m', 'initial'], { cwd: work });
    await gitOk(['push', 'origin', 'HEAD:main'], { cwd: work });
    await t.platform.settle();
    return { id, name, url, work };
  }

  /** Commits `files` on a new branch started from `from` and pushes it. */
  async function branch(
    p: { work: string },
    name: string,
    files: Record<string, string>,
    from = 'origin/main',
    message = `change on ${name}`,
  ) {
    await gitOk(['fetch', 'origin'], { cwd: p.work });
    await gitOk(['checkout', '-q', '-B', name, from], { cwd: p.work });
    for (const [file, content] of Object.entries(files)) writeFileSync(path.join(p.work, file), content);
    await gitOk(['add', '.'], { cwd: p.work });
    await gitOk(['commit', '-q', '-m', message], { cwd: p.work });
    await gitOk(['push', '-q', '-f', 'origin', `${name}:${name}`], { cwd: p.work });
    await t.platform.settle();
    return (await gitOk(['rev-parse', 'HEAD'], { cwd: p.work })).trim();
  }

  /** `concurrent`: part of a burst, so the one-audit-row-per-request check cannot attribute rows. */
  const open = (projectId: string, body: Record<string, unknown>, token = owner.token, concurrent = false) =>
    t.request('POST', `/api/projects/${projectId}/merge-requests`, { token, body, noAuditCheck: concurrent });
  const merge = (
    projectId: string,
    n: number,
    body: Record<string, unknown> = {},
    token = owner.token,
    concurrent = false,
  ) =>
    t.request('POST', `/api/projects/${projectId}/merge-requests/${n}/merge`, {
      token,
      body,
      noAuditCheck: concurrent,
    });

  async function freshLog(p: { url: string; name: string }, format = '%s') {
    const dir = path.join(tmp.dir, `verify-${p.name}-${++counter}`);
    await gitOk(['clone', '-q', p.url, dir]);
    return {
      dir,
      log: (await gitOk(['log', '--graph', `--format=${format}`, 'origin/main'], { cwd: dir })).trimEnd(),
    };
  }

  it('opens a merge request with the head and base recorded; a second open MR for the pair is a 409', async () => {
    const p = await project();
    const head = await branch(p, 'feature', { 'a.txt': 'a\n' });
    const res = await open(p.id, {
      source_branch: 'feature',
      target_branch: 'main',
      title: 'Add a',
      body: 'why',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      number: 1,
      status: 'open',
      title: 'Add a',
      source_branch: 'feature',
      target_branch: 'main',
      head_sha: head,
      author: { id: owner.id, name: 'maria' },
      merged_by: null,
    });
    const dup = await open(p.id, { source_branch: 'feature', target_branch: 'main', title: 'again' });
    expect(dup.status).toBe(409);
    expect(dup.body.error.reason).toBe('mr.already_open');
    expect(dup.body.error.message).toContain('!1');
    const second = await branch(p, 'other', { 'b.txt': 'b\n' });
    const n2 = await open(p.id, { source_branch: 'other', target_branch: 'main', title: 'Add b' });
    expect(n2.body.number).toBe(2);
    expect(n2.body.head_sha).toBe(second);
  });

  it('refuses missing or identical branches with a 422 naming the field', async () => {
    const p = await project();
    const missing = await open(p.id, { source_branch: 'nope', target_branch: 'main', title: 'x' });
    expect(missing.status).toBe(422);
    expect(missing.body.error.details).toEqual([
      { path: 'body.source_branch', message: 'branch nope does not exist' },
    ]);
    const same = await open(p.id, { source_branch: 'main', target_branch: 'main', title: 'x' });
    expect(same.status).toBe(422);
    const bad = await open(p.id, { source_branch: 'a..b', target_branch: 'main', title: 'x' });
    expect(bad.status).toBe(400);
    const noTitle = await open(p.id, { source_branch: 'main', target_branch: 'x', title: '  ' });
    expect(noTitle.status).toBe(400);
  });

  it('detail shows commits, diff stats, mergeability, approvals and checks', async () => {
    const p = await project();
    await branch(p, 'stats', { 'new.txt': 'one\ntwo\n', README: 'line 1\nline 2 changed\nline 3\n' });
    const mr = (await open(p.id, { source_branch: 'stats', target_branch: 'main', title: 'stats' })).body;
    const d = await t.request('GET', `/api/projects/${p.id}/merge-requests/${mr.number}`, {
      token: outsider.token,
    });
    expect(d.status).toBe(200);
    expect(d.body.commits).toHaveLength(1);
    expect(d.body.commits[0]).toMatchObject({
      sha: mr.head_sha,
      title: 'change on stats',
      author_name: 'Test User',
    });
    expect(d.body.diff_stats).toMatchObject({ files_changed: 2, additions: 3, deletions: 1 });
    expect(d.body.diff_stats.files.map((f: { path: string }) => f.path).sort()).toEqual([
      'README',
      'new.txt',
    ]);
    expect(d.body.mergeability).toEqual({
      mergeable: true,
      conflicts: [],
      fast_forward_possible: true,
      reason: null,
    });
    expect(d.body.approvals).toEqual({ required: 0, given: 0, approved_by: [], changes_requested_by: [] });
    expect(d.body.checks).toEqual({ required: false, latest_pipeline: null, runs: [] });
    expect(d.body).toMatchObject({ mergeable: true, blockers: [] });
  });

  it('lists with filters and cursor pagination', async () => {
    const p = await project();
    for (const b of ['l1', 'l2', 'l3']) {
      await branch(p, b, { [`${b}.txt`]: b });
      await open(p.id, { source_branch: b, target_branch: 'main', title: `title ${b}` });
    }
    await branch(p, 'by-rob', { 'r.txt': 'r' });
    await t.request('POST', `/api/projects/${p.id}/members`, {
      token: owner.token,
      body: { user_id: reviewer.id, role: 'developer' },
    });
    await open(p.id, { source_branch: 'by-rob', target_branch: 'l1', title: 'into l1' }, reviewer.token);
    await t.request('PATCH', `/api/projects/${p.id}/merge-requests/2`, {
      token: owner.token,
      body: { status: 'closed' },
    });
    const list = (q: string) =>
      t.request('GET', `/api/projects/${p.id}/merge-requests?${q}`, { token: owner.token }).then((r) => {
        expect(r.status).toBe(200);
        return r.body as { items: { number: number }[]; next_cursor: string | null };
      });
    expect((await list('')).items.map((m) => m.number)).toEqual([4, 3, 1]);
    expect((await list('status=closed')).items.map((m) => m.number)).toEqual([2]);
    expect((await list('status=all&author=rob')).items.map((m) => m.number)).toEqual([4]);
    expect((await list('target=l1')).items.map((m) => m.number)).toEqual([4]);
    expect((await list('q=title%20l3')).items.map((m) => m.number)).toEqual([3]);
    const page1 = await list('status=all&limit=3');
    expect(page1.items.map((m) => m.number)).toEqual([4, 3, 2]);
    const page2 = await list(`status=all&limit=3&cursor=${page1.next_cursor}`);
    expect(page2.items.map((m) => m.number)).toEqual([1]);
    expect(page2.next_cursor).toBeNull();
    expect(
      (await t.request('GET', `/api/projects/${p.id}/merge-requests?cursor=zzz`, { token: owner.token }))
        .status,
    ).toBe(400);
  });

  it('merge strategy "merge" creates a --no-ff merge commit with both parents', async () => {
    const p = await project();
    const head = await branch(p, 'feat-merge', { 'm.txt': 'm\n' });
    const before = (await gitOk(['rev-parse', 'origin/main'], { cwd: p.work })).trim();
    const mr = (await open(p.id, { source_branch: 'feat-merge', target_branch: 'main', title: 'Merge me' }))
      .body;
    const res = await merge(p.id, mr.number);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'merged',
      merge_strategy: 'merge',
      merged_by: { id: owner.id, name: 'maria' },
    });
    const { dir, log } = await freshLog(p);
    expect(log).toBe(
      [
        "*   Merge branch 'feat-merge' into 'main'",
        '|\\  ',
        '| * change on feat-merge',
        '|/  ',
        '* initial',
      ].join('\n'),
    );
    const parents = (await gitOk(['show', '--no-patch', '--format=%P', 'origin/main'], { cwd: dir })).trim();
    expect(parents).toBe(`${before} ${head}`);
    expect((await gitOk(['rev-parse', 'origin/main'], { cwd: dir })).trim()).toBe(res.body.merge_sha);
    const body = (await gitOk(['show', '--no-patch', '--format=%B', 'origin/main'], { cwd: dir })).trim();
    expect(body).toContain('Merge me (!1)');
    expect((await gitOk(['show', 'origin/main:m.txt'], { cwd: dir })).trim()).toBe('m');
  });

  it('merge strategy "squash" creates one commit on the target, authored by the MR author', async () => {
    const p = await project();
    await branch(p, 'feat-squash', { 's1.txt': '1\n' });
    writeFileSync(path.join(p.work, 's2.txt'), '2\n');
    await gitOk(['add', '.'], { cwd: p.work });
    await gitOk(['commit', '-q', '-m', 'second'], { cwd: p.work });
    await gitOk(['push', '-q', 'origin', 'feat-squash'], { cwd: p.work });
    await t.platform.settle();
    const before = (await gitOk(['rev-parse', 'origin/main'], { cwd: p.work })).trim();
    await t.request('POST', `/api/projects/${p.id}/members`, {
      token: owner.token,
      body: { user_id: reviewer.id, role: 'developer' },
    });
    const mr = (
      await open(
        p.id,
        { source_branch: 'feat-squash', target_branch: 'main', title: 'Squash me' },
        reviewer.token,
      )
    ).body;
    const res = await merge(p.id, mr.number, { strategy: 'squash' });
    expect(res.status).toBe(200);
    const { dir, log } = await freshLog(p);
    expect(log).toBe(['* Squash me (!1)', '* initial'].join('\n'));
    expect((await gitOk(['show', '--no-patch', '--format=%P', 'origin/main'], { cwd: dir })).trim()).toBe(
      before,
    );
    expect(
      (await gitOk(['show', '--no-patch', '--format=%an|%cn', 'origin/main'], { cwd: dir })).trim(),
    ).toBe('rob|maria');
    expect((await gitOk(['ls-tree', '--name-only', 'origin/main'], { cwd: dir })).trim().split('\n')).toEqual(
      ['README', 's1.txt', 's2.txt'],
    );
  });

  it('merge strategy "fast_forward" moves the target to the head, and refuses when the target diverged', async () => {
    const p = await project();
    const head = await branch(p, 'feat-ff', { 'f.txt': 'f\n' });
    const mr = (await open(p.id, { source_branch: 'feat-ff', target_branch: 'main', title: 'FF' })).body;
    const res = await merge(p.id, mr.number, { strategy: 'fast_forward' });
    expect(res.status).toBe(200);
    expect(res.body.merge_sha).toBe(head);
    const { log } = await freshLog(p);
    expect(log).toBe(['* change on feat-ff', '* initial'].join('\n'));

    await branch(p, 'late', { 'late.txt': 'x' }, 'origin/main~1');
    const late = (await open(p.id, { source_branch: 'late', target_branch: 'main', title: 'late' })).body;
    const refused = await merge(p.id, late.number, { strategy: 'fast_forward' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.reason).toBe('mr.not_fast_forward');
    expect(refused.body.error.message).toContain('cannot fast-forward');
    const still = await t.request('GET', `/api/projects/${p.id}/merge-requests/${late.number}`, {
      token: owner.token,
    });
    expect(still.body.status).toBe('open');
    expect(still.body.mergeability.fast_forward_possible).toBe(false);
  });

  it('a conflicting MR answers 409 listing the files, and the target is untouched', async () => {
    const p = await project();
    await branch(p, 'left', { README: 'left\n', 'x.txt': 'left\n' });
    await branch(p, 'right', { README: 'right\n', 'x.txt': 'right\n', 'ok.txt': 'fine\n' });
    const left = (await open(p.id, { source_branch: 'left', target_branch: 'main', title: 'left' })).body;
    const right = (await open(p.id, { source_branch: 'right', target_branch: 'main', title: 'right' })).body;
    expect((await merge(p.id, left.number)).status).toBe(200);
    const tipBefore = (await git(['ls-remote', p.url, 'refs/heads/main'])).stdout.split('\t')[0];
    const detail = await t.request('GET', `/api/projects/${p.id}/merge-requests/${right.number}`, {
      token: owner.token,
    });
    expect(detail.body.mergeability).toMatchObject({
      mergeable: false,
      conflicts: ['README', 'x.txt'],
      reason: 'conflicts',
    });
    const res = await merge(p.id, right.number);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    expect(res.body.error.reason).toBe('mr.merge_conflict');
    expect(detail.body).toMatchObject({
      mergeable: false,
      blockers: [{ reason: 'mr.merge_conflict', message: res.body.error.message }],
    });
    expect(res.body.error.message).toBe('merge conflicts in README, x.txt');
    expect(res.body.error.details).toEqual([
      { path: 'README', message: 'conflict' },
      { path: 'x.txt', message: 'conflict' },
    ]);
    expect((await git(['ls-remote', p.url, 'refs/heads/main'])).stdout.split('\t')[0]).toBe(tipBefore);
  });

  it('a protected branch blocks the merge until enough approvals of the current head', async () => {
    const p = await project();
    await t.request('POST', `/api/projects/${p.id}/members`, {
      token: owner.token,
      body: { user_id: reviewer.id, role: 'developer' },
    });
    const rule = await t.request('POST', `/api/projects/${p.id}/protected-branches`, {
      token: owner.token,
      body: { pattern: 'main', required_approvals: 1 },
    });
    expect(rule.status).toBe(201);
    await branch(p, 'guarded', { 'g.txt': 'g\n' });
    const mr = (await open(p.id, { source_branch: 'guarded', target_branch: 'main', title: 'guarded' })).body;
    const blocked = await merge(p.id, mr.number);
    expect(blocked.status).toBe(409);
    expect(blocked.body.error.reason).toBe('mr.approvals_required');
    expect(blocked.body.error.message).toContain('requires 1 approval(s)');

    const self = await t.request('POST', `/api/projects/${p.id}/merge-requests/${mr.number}/reviews`, {
      token: owner.token,
      body: { verdict: 'approve' },
    });
    expect(self.status).toBe(403);
    expect(self.body.error.reason).toBe('mr.self_review');
    const approve = await t.request('POST', `/api/projects/${p.id}/merge-requests/${mr.number}/reviews`, {
      token: reviewer.token,
      body: { verdict: 'approve', body: 'LGTM' },
    });
    expect(approve.status).toBe(201);
    expect(approve.body).toMatchObject({ verdict: 'approve', commit_sha: mr.head_sha });

    // A new push makes the approval stale.
    await gitOk(['checkout', '-q', 'guarded'], { cwd: p.work });
    writeFileSync(path.join(p.work, 'g2.txt'), 'more\n');
    await gitOk(['add', '.'], { cwd: p.work });
    await gitOk(['commit', '-q', '-m', 'more'], { cwd: p.work });
    await gitOk(['push', '-q', 'origin', 'guarded'], { cwd: p.work });
    await t.platform.settle();
    const stale = await t.request('GET', `/api/projects/${p.id}/merge-requests/${mr.number}`, {
      token: owner.token,
    });
    expect(stale.body.approvals).toMatchObject({ required: 1, given: 0 });
    expect(stale.body.reviews[0]).toMatchObject({ verdict: 'approve', stale: true });
    expect((await merge(p.id, mr.number)).status).toBe(409);

    await t.request('POST', `/api/projects/${p.id}/merge-requests/${mr.number}/reviews`, {
      token: reviewer.token,
      body: { verdict: 'approve' },
    });
    const ok = await merge(p.id, mr.number);
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe('merged');
  });

  it('a rule asking for a green pipeline blocks until the head has a successful pipeline', async () => {
    const p = await project();
    await t.request('POST', `/api/projects/${p.id}/protected-branches`, {
      token: owner.token,
      body: { pattern: 'main', require_pipeline: true },
    });
    const head = await branch(p, 'needs-ci', { 'c.txt': 'c\n' });
    const mr = (await open(p.id, { source_branch: 'needs-ci', target_branch: 'main', title: 'ci' })).body;
    const blocked = await merge(p.id, mr.number);
    expect(blocked.status).toBe(409);
    expect(blocked.body.error.reason).toBe('mr.pipeline_required');
    expect(blocked.body.error.message).toContain('requires a successful pipeline');
    const db = t.platform.drivers.db.db;
    await db
      .insertInto('pipelines')
      .values({
        project_id: p.id,
        number: 1,
        trigger: 'api',
        git_ref: 'refs/heads/needs-ci',
        commit_sha: head,
        status: 'success',
      })
      .execute();
    const detail = await t.request('GET', `/api/projects/${p.id}/merge-requests/${mr.number}`, {
      token: owner.token,
    });
    expect(detail.body.checks).toMatchObject({ required: true, latest_pipeline: { status: 'success' } });
    expect((await merge(p.id, mr.number)).status).toBe(200);
  });

  /**
   * The detail's first blocker is what the merge answers with: same reason, same message; with
   * `reason` null the detail says mergeable and the merge goes through.
   */
  async function agree(
    projectId: string,
    n: number,
    reason: string | null,
    body: Record<string, unknown> = {},
  ) {
    const d = await t.request('GET', `/api/projects/${projectId}/merge-requests/${n}`, {
      token: owner.token,
    });
    expect(d.status).toBe(200);
    const res = await merge(projectId, n, body);
    if (reason === null) {
      expect(d.body).toMatchObject({ mergeable: true, blockers: [] });
      expect(res.status).toBe(200);
      return;
    }
    expect(d.body.mergeable).toBe(false);
    expect(d.body.blockers[0]).toMatchObject({ reason });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({
      code: 'conflict',
      reason,
      message: d.body.blockers[0].message,
      details: d.body.blockers[0].details,
    });
  }

  it('detail and merge agree on every rule: state, branches, approvals, changes requested, pipelines', async () => {
    const p = await project();
    await t.request('POST', `/api/projects/${p.id}/members`, {
      token: owner.token,
      body: { user_id: reviewer.id, role: 'developer' },
    });
    const db = t.platform.drivers.db.db;
    const openMr = async (source: string, target = 'main') =>
      (await open(p.id, { source_branch: source, target_branch: target, title: source })).body
        .number as number;
    const review = (n: number, verdict: string) =>
      t.request('POST', `/api/projects/${p.id}/merge-requests/${n}/reviews`, {
        token: reviewer.token,
        body: { verdict },
      });

    // Nothing to merge: the source is the target's tip.
    await gitOk(['push', '-q', 'origin', 'origin/main:refs/heads/same'], { cwd: p.work });
    await t.platform.settle();
    await agree(p.id, await openMr('same'), 'mr.nothing_to_merge');

    // A closed merge request.
    await branch(p, 'closed', { 'closed.txt': 'c\n' });
    const closed = await openMr('closed');
    await t.request('PATCH', `/api/projects/${p.id}/merge-requests/${closed}`, {
      token: owner.token,
      body: { status: 'closed' },
    });
    await agree(p.id, closed, 'mr.not_open');

    // Source deleted; target deleted.
    await branch(p, 'gone', { 'gone.txt': 'g\n' });
    const gone = await openMr('gone');
    await gitOk(['push', '-q', 'origin', ':refs/heads/gone'], { cwd: p.work });
    await agree(p.id, gone, 'mr.source_branch_missing');
    await gitOk(['push', '-q', 'origin', 'origin/main:refs/heads/tmp'], { cwd: p.work });
    await branch(p, 'into-tmp', { 'tmp.txt': 't\n' });
    const intoTmp = await openMr('into-tmp', 'tmp');
    await gitOk(['push', '-q', 'origin', ':refs/heads/tmp'], { cwd: p.work });
    await t.platform.settle();
    await agree(p.id, intoTmp, 'mr.target_branch_missing');

    // The source moved since the client looked (only the merge knows what the client expects).
    const head = await branch(p, 'moved', { 'moved.txt': 'm\n' });
    const moved = await openMr('moved');
    const stale = await merge(p.id, moved, { expected_head_sha: 'f'.repeat(40) });
    expect(stale.status).toBe(409);
    expect(stale.body.error.reason).toBe('mr.head_changed');
    expect(stale.body.error.details).toEqual([
      { path: 'body.expected_head_sha', message: `head is ${head}` },
    ]);

    // Protection: approvals, then changes requested, then the pipeline, each in turn.
    await t.request('POST', `/api/projects/${p.id}/protected-branches`, {
      token: owner.token,
      body: { pattern: 'main', required_approvals: 1, require_pipeline: true },
    });
    const ciHead = await branch(p, 'guarded', { 'guarded.txt': 'g\n' });
    const guarded = await openMr('guarded');
    await agree(p.id, guarded, 'mr.approvals_required');
    await review(guarded, 'request_changes');
    await agree(p.id, guarded, 'mr.approvals_required');
    const d = await t.request('GET', `/api/projects/${p.id}/merge-requests/${guarded}`, {
      token: owner.token,
    });
    expect(d.body.blockers.map((b: { reason: string }) => b.reason)).toEqual([
      'mr.approvals_required',
      'mr.changes_requested',
      'mr.pipeline_required',
    ]);
    await review(guarded, 'approve');
    await agree(p.id, guarded, 'mr.pipeline_required');
    const pipeline = async (status: 'running' | 'failure' | 'success', number: number) =>
      db
        .insertInto('pipelines')
        .values({
          project_id: p.id,
          number,
          trigger: 'api',
          git_ref: 'refs/heads/guarded',
          commit_sha: ciHead,
          status,
        })
        .execute();
    await pipeline('running', 1);
    await agree(p.id, guarded, 'mr.pipeline_pending');
    await pipeline('failure', 2);
    await agree(p.id, guarded, 'mr.pipeline_failed');
    await review(guarded, 'approve');
    await pipeline('success', 3);
    await agree(p.id, guarded, null);

    // A rule without requirements still refuses while a reviewer requests changes.
    await t.request('POST', `/api/projects/${p.id}/protected-branches`, {
      token: owner.token,
      body: { pattern: 'rel' },
    });
    await gitOk(['fetch', 'origin'], { cwd: p.work });
    await gitOk(['push', '-q', 'origin', 'origin/main:refs/heads/rel'], { cwd: p.work });
    await t.platform.settle();
    await branch(p, 'to-rel', { 'rel.txt': 'r\n' });
    const toRel = await openMr('to-rel', 'rel');
    await review(toRel, 'request_changes');
    await agree(p.id, toRel, 'mr.changes_requested');

    // Archived: the API hides archived projects (404), so the service is asked; nothing merges.
    await branch(p, 'late', { 'late.txt': 'l\n' });
    const late = await openMr('late');
    await db.updateTable('projects').set({ is_active: false }).where('id', '=', p.id).execute();
    const service = t.platform.services.mergeRequests;
    const archived = await service.detail(p.id, late, async () => true);
    expect(archived.mergeable).toBe(false);
    expect(archived.blockers.map((b) => b.reason)).toEqual([
      'mr.project_archived',
      'mr.approvals_required',
      'mr.pipeline_required',
    ]);
    const maria = { userId: owner.id, userName: 'maria', userType: 'human' as const };
    await expect(
      service.merge({ id: owner.id, name: 'maria', ip: null }, maria, p.id, late, {}),
    ).rejects.toMatchObject({
      status: 409,
      reason: 'mr.project_archived',
      message: archived.blockers[0]!.message,
    });
  });

  it('a push to the source branch updates the head and emits mr.updated', async () => {
    const p = await project();
    const first = await branch(p, 'moving', { 'v.txt': '1\n' });
    const mr = (await open(p.id, { source_branch: 'moving', target_branch: 'main', title: 'moving' })).body;
    expect(mr.head_sha).toBe(first);
    const seen: { headSha: string; previousHeadSha: string | null; number: number }[] = [];
    const off = t.platform.events.on('mr.updated', (e) => {
      if (e.projectId === p.id) seen.push(e);
    });
    const second = await branch(p, 'moving', { 'v.txt': '2\n' }, 'moving');
    off();
    const after = await t.request('GET', `/api/projects/${p.id}/merge-requests/${mr.number}`, {
      token: owner.token,
    });
    expect(after.body.head_sha).toBe(second);
    expect(after.body.commits).toHaveLength(2);
    expect(seen).toEqual([
      expect.objectContaining({ number: mr.number, headSha: second, previousHeadSha: first }),
    ]);
  });

  it('a push that brings the head into the target marks the MR merged', async () => {
    const p = await project();
    const head = await branch(p, 'manual', { 'man.txt': 'm\n' });
    const mr = (await open(p.id, { source_branch: 'manual', target_branch: 'main', title: 'manual' })).body;
    await gitOk(['push', '-q', 'origin', `${head}:refs/heads/main`], { cwd: p.work });
    await t.platform.settle();
    const after = await t.request('GET', `/api/projects/${p.id}/merge-requests/${mr.number}`, {
      token: owner.token,
    });
    expect(after.body).toMatchObject({ status: 'merged', merge_sha: head, merge_strategy: null });
  });

  it('close and reopen follow the transition table; a merged MR cannot be reopened or reviewed', async () => {
    const p = await project();
    await branch(p, 'cycle', { 'c.txt': 'c\n' });
    const mr = (await open(p.id, { source_branch: 'cycle', target_branch: 'main', title: 'cycle' })).body;
    const url = `/api/projects/${p.id}/merge-requests/${mr.number}`;
    const closed = await t.request('PATCH', url, { token: owner.token, body: { status: 'closed' } });
    expect(closed.body).toMatchObject({ status: 'closed' });
    expect(closed.body.closed_at).not.toBeNull();
    const closedMerge = await merge(p.id, mr.number);
    expect(closedMerge.status).toBe(409);
    expect(closedMerge.body.error.reason).toBe('mr.not_open');
    // The source branch moves while the MR is closed: reopening picks up the new head.
    const moved = await branch(p, 'cycle', { 'c.txt': 'c2\n' }, 'cycle');
    const seen: string[] = [];
    const offs = [
      t.platform.events.on('mr.reopened', (e) => {
        if (e.projectId === p.id) seen.push(`reopened ${e.headSha}`);
      }),
      t.platform.events.on('mr.updated', (e) => {
        if (e.projectId === p.id) seen.push(`updated ${e.previousHeadSha}->${e.headSha}`);
      }),
    ];
    const reopened = await t.request('PATCH', url, {
      token: owner.token,
      body: { status: 'open', title: 'cycle 2' },
    });
    for (const off of offs) off();
    expect(reopened.body).toMatchObject({
      status: 'open',
      title: 'cycle 2',
      closed_at: null,
      head_sha: moved,
    });
    // The reopen carries the new head (an MR pipeline trigger); the title edit leaves the head as is.
    expect(seen).toEqual([`reopened ${moved}`, `updated ${moved}->${moved}`]);
    expect((await merge(p.id, mr.number)).status).toBe(200);
    const again = await t.request('PATCH', url, { token: owner.token, body: { status: 'open' } });
    expect(again.status).toBe(409);
    expect(again.body.error.reason).toBe('mr.already_merged');
    expect(again.body.error.message).toBe('the merge request is merged');
    const review = await t.request('POST', `${url}/reviews`, {
      token: reviewer.token,
      body: { verdict: 'comment' },
    });
    expect(review.status).toBe(409);
    expect(review.body.error.reason).toBe('mr.not_open');
    expect((await t.request('PATCH', url, { token: owner.token, body: {} })).status).toBe(400);
  });

  it('emits mr.opened and mr.merged, and a push event for the target branch', async () => {
    const p = await project();
    const names: string[] = [];
    const off = t.platform.events.onAny((name, payload) => {
      if ((payload as { projectId?: string }).projectId === p.id) names.push(name);
    });
    await branch(p, 'evented', { 'e.txt': 'e\n' });
    names.length = 0;
    const mr = (await open(p.id, { source_branch: 'evented', target_branch: 'main', title: 'ev' })).body;
    await merge(p.id, mr.number, { strategy: 'squash' });
    await t.platform.settle();
    off();
    expect(names).toEqual(['mr.opened', 'mr.merged', 'push.received']);
  });

  it('permissions: private projects are 404 to non-members, internal ones 403 for writes', async () => {
    const priv = await project({ visibility: 'private' });
    await branch(priv, 'p', { 'p.txt': 'p' });
    const mine = (await open(priv.id, { source_branch: 'p', target_branch: 'main', title: 'p' })).body;
    expect(
      (await t.request('GET', `/api/projects/${priv.id}/merge-requests`, { token: outsider.token })).status,
    ).toBe(404);
    expect(
      (
        await t.request('GET', `/api/projects/${priv.id}/merge-requests/${mine.number}`, {
          token: outsider.token,
        })
      ).status,
    ).toBe(404);
    expect((await merge(priv.id, mine.number, {}, outsider.token)).status).toBe(404);
    const internal = await project();
    await branch(internal, 'i', { 'i.txt': 'i' });
    expect(
      (await open(internal.id, { source_branch: 'i', target_branch: 'main', title: 'i' }, outsider.token))
        .status,
    ).toBe(403);
    const reviewers = await open(internal.id, {
      source_branch: 'i',
      target_branch: 'main',
      title: 'i',
      reviewer_ids: ['00000000-0000-4000-8000-000000000000'],
    });
    expect(reviewers.status).toBe(422);
  });

  it('20 concurrent merges into one target: each merged or a clean 409, history complete, fsck clean', async () => {
    const p = await project();
    // Twenty branches from main, pushed at once; every fourth also edits README line 2, so those
    // conflict with each other.
    for (let i = 0; i < 20; i++) {
      await gitOk(['checkout', '-q', '-B', `c${i}`, 'origin/main'], { cwd: p.work });
      writeFileSync(path.join(p.work, `c${i}.txt`), `${i}\n`);
      if (i % 4 === 0) writeFileSync(path.join(p.work, 'README'), `line 1\nline 2 by ${i}\nline 3\n`);
      await gitOk(['add', '.'], { cwd: p.work });
      await gitOk(['commit', '-q', '-m', `c${i}`], { cwd: p.work });
    }
    await gitOk(['push', '-q', 'origin', ...Array.from({ length: 20 }, (_, i) => `c${i}`)], { cwd: p.work });
    await t.platform.settle();
    const numbers: number[] = [];
    for (let i = 0; i < 20; i++) {
      numbers.push(
        (await open(p.id, { source_branch: `c${i}`, target_branch: 'main', title: `c${i}` })).body.number,
      );
    }
    const strategies = ['merge', 'squash'] as const;
    const results = await Promise.all(
      numbers.map((n, i) => merge(p.id, n, { strategy: strategies[i % 2] }, owner.token, true)),
    );
    const merged = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    for (const r of refused) {
      expect(r.status).toBe(409);
      expect(r.body.error.reason).toBe('mr.merge_conflict');
      expect(r.body.error.message).toMatch(/^merge conflicts in README/);
    }
    // Exactly one of the five README editors wins; all 15 others merge.
    expect(merged).toHaveLength(16);
    const { dir } = await freshLog(p);
    const files = (await gitOk(['ls-tree', '--name-only', 'origin/main'], { cwd: dir })).trim().split('\n');
    for (const r of merged) {
      const n = Number(r.body.title.slice(1));
      expect(files).toContain(`c${n}.txt`);
      expect(
        (await git(['merge-base', '--is-ancestor', r.body.merge_sha, 'origin/main'], { cwd: dir })).code,
      ).toBe(0);
    }
    const fsck = await git(['fsck', '--strict'], {
      cwd: path.join(t.platform.config.data_dir, 'repos', 'maria', `${p.name}.git`),
    });
    expect(fsck.code, fsck.stderr).toBe(0);
    const states = await t.request('GET', `/api/projects/${p.id}/merge-requests?status=merged&limit=50`, {
      token: owner.token,
    });
    expect(states.body.items).toHaveLength(16);
  });

  it('the MR number sequence survives concurrent creation', async () => {
    const p = await project();
    for (let i = 0; i < 10; i++) await branch(p, `n${i}`, { [`n${i}`]: 'n' });
    const res = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        open(p.id, { source_branch: `n${i}`, target_branch: 'main', title: `n${i}` }, owner.token, true),
      ),
    );
    expect(res.map((r) => r.body.number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
