/**
 * The pipelines API and the hand-offs: api trigger with variables, retry, concurrency groups,
 * listing, artifacts (round trip through the presigned URL, expiry), publish → deployments,
 * schedules and merge request triggers. Real git pushes; steps on the local runner.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentChangedEvent } from '../src/deployer/events.js';
import { PIPELINE_LOOPS } from '../src/pipeline/index.js';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

interface Step {
  id: string;
  name: string;
  status: string;
  started_at: string | null;
  finished_at: string | null;
}
interface Pipeline {
  id: string;
  status: string;
  error: string | null;
  commit_sha: string;
  git_ref: string;
  trigger: string;
  retry_of: string | null;
  mr_id: string | null;
  variables: Record<string, string>;
  concurrency_group: string | null;
  started_at: string | null;
  finished_at: string | null;
  steps: Step[];
}

describe.skipIf(servicesMissing)('pipelines API and hand-offs', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string };
  let viewer: { id: string; token: string };
  let projectId: string;
  let work: string;
  const tmp = tempDir('platform-pipelines-api-');
  const deployments: DeploymentChangedEvent[] = [];

  beforeAll(async () => {
    t = await createTestPlatform({
      listen: true,
      config: { PLATFORM_PIPELINE_REGISTRY: 'registry.example.test' },
    });
    t.platform.events.on('deployment.changed', (e) => {
      deployments.push(e);
    });
    t.platform.startBackground();
    dev = await t.createUser('ada', ['developer']);
    viewer = await t.createUser('vic');
    const res = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'api-builds' } });
    expect(res.status).toBe(201);
    projectId = res.body.id;
    const member = await t.request('POST', `/api/projects/${projectId}/members`, {
      token: dev.token,
      body: { user_id: viewer.id, role: 'viewer' },
    });
    expect(member.status).toBeLessThan(300);
    work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'ada', dev.token, '/ada/api-builds.git'), work]);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  async function push(branch: string, files: Record<string, string>, message = `build ${branch}`) {
    await gitOk(['checkout', '-q', '-B', branch], { cwd: work });
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
      writeFileSync(path.join(work, name), content);
    }
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '--allow-empty', '-m', message], { cwd: work });
    await gitOk(['push', '-q', '-f', 'origin', `HEAD:refs/heads/${branch}`], { cwd: work });
    await t.platform.settle();
    return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
  }

  const base = () => `/api/projects/${projectId}/pipelines`;

  async function get(id: string): Promise<Pipeline> {
    const res = await t.request('GET', `${base()}/${id}`, { token: dev.token });
    expect(res.status).toBe(200);
    return res.body;
  }

  async function done(id: string, timeoutMs = 20_000): Promise<Pipeline> {
    const p = await eventually<Pipeline | undefined>(
      async () => {
        const p = await get(id);
        return ['success', 'failure', 'cancelled'].includes(p.status) &&
          p.steps.every((s) => s.status !== 'running')
          ? p
          : undefined;
      },
      timeoutMs,
      `pipeline ${id} to finish`,
    );
    return p!;
  }

  /** API trigger; pipelines finishing in the background write audit rows of their own, so those are counted here. */
  async function trigger(gitRef: string, variables?: Record<string, string>) {
    return t.request('POST', base(), {
      token: dev.token,
      body: { git_ref: gitRef, ...(variables ? { variables } : {}) },
      noAuditCheck: true,
    });
  }

  async function auditRows(action: string, resourceId: string) {
    return t.platform.drivers.db.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', action)
      .where('resource_id', '=', resourceId)
      .execute();
  }

  it('api trigger: 201 with the pipeline, variables reach the steps, one audit row', async () => {
    await push('api-main', {
      '.platform.yaml': `pipeline:
  steps:
    - name: show
      commands: ['echo "greeting=$GREETING ref=$COMMIT_REF registry=$REGISTRY"']
  on: { api: true }
`,
    });
    // `on` without push: the push itself started nothing.
    const before = await t.request('GET', `${base()}?ref=api-main`, { token: dev.token });
    expect(before.body.items).toEqual([]);
    const res = await trigger('api-main', { GREETING: 'hello there' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      trigger: 'api',
      git_ref: 'refs/heads/api-main',
      ref_name: 'api-main',
      variables: { GREETING: 'hello there' },
      triggered_by: dev.id,
    });
    expect(['pending', 'running']).toContain(res.body.status);
    expect(res.body.steps.map((s: Step) => s.name)).toEqual(['show']);
    const audit = await auditRows('pipeline.create', res.body.id);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor_id: dev.id, project_id: projectId });
    const p = await done(res.body.id);
    expect(p.status).toBe('success');
    const logRes = await t.request('GET', `${base()}/${p.id}/steps/${p.steps[0]!.id}/logs`, {
      token: viewer.token,
    });
    expect(logRes.status).toBe(200);
    expect(logRes.text).toContain(
      'greeting=hello there ref=refs/heads/api-main registry=registry.example.test',
    );
    expect(await auditRows('pipeline.finish', p.id)).toHaveLength(1);
  });

  it('api trigger refuses bad input with 4xx and writes nothing', async () => {
    const count = async () =>
      (
        await t.platform.drivers.db.db
          .selectFrom('pipelines')
          .select(sql<number>`count(*)::int`.as('n'))
          .executeTakeFirstOrThrow()
      ).n;
    const before = await count();
    const injected = await trigger('api-main', { COMMIT_SHA: 'x' });
    expect(injected.status).toBe(422);
    expect(injected.body.error.message).toContain('COMMIT_SHA');
    expect(injected.body.error.reason).toBe('pipeline.injected_variable');
    const badName = await trigger('api-main', { 'lower-case': 'x' });
    expect(badName.status).toBe(400);
    const unknownRef = await trigger('no-such-branch');
    expect(unknownRef.status).toBe(422);
    expect(unknownRef.body.error.message).toContain('no-such-branch');
    expect(unknownRef.body.error.reason).toBe('pipeline.unknown_ref');
    const asViewer = await t.request('POST', base(), { token: viewer.token, body: { git_ref: 'api-main' } });
    expect(asViewer.status).toBe(403);
    const anonymous = await t.request('GET', base());
    expect([401, 404]).toContain(anonymous.status);
    await push('api-off', {
      '.platform.yaml':
        'pipeline:\n  steps:\n    - name: a\n      commands: ["true"]\n  on: { push: false, api: false }\n',
    });
    const disabled = await trigger('api-off');
    expect(disabled.status).toBe(422);
    expect(disabled.body.error.message).toContain('api');
    expect(disabled.body.error.reason).toBe('pipeline.api_disabled');
    await gitOk(['checkout', '-q', '--orphan', 'bare-branch'], { cwd: work });
    await gitOk(['rm', '-rq', '--cached', '.'], { cwd: work });
    execFileSync('rm', ['-f', path.join(work, '.platform.yaml')]);
    await push('bare-branch', { 'README.md': 'nothing to build' });
    const noDefinition = await trigger('bare-branch');
    expect(noDefinition.status).toBe(422);
    expect(noDefinition.body.error.message).toContain('.platform.yaml');
    expect(noDefinition.body.error.reason).toBe('pipeline.no_definition');
    expect(await count()).toBe(before);
  });

  it('retry: a finished pipeline runs again with the same commit, ref and variables; 409 otherwise', async () => {
    const first = await trigger('api-main', { GREETING: 'again' });
    const finished = await done(first.body.id);
    const retry = await t.request('POST', `${base()}/${finished.id}/retry`, {
      token: dev.token,
      noAuditCheck: true,
    });
    expect(retry.status).toBe(201);
    expect(retry.body).toMatchObject({
      retry_of: finished.id,
      commit_sha: finished.commit_sha,
      git_ref: finished.git_ref,
      variables: { GREETING: 'again' },
    });
    expect(await auditRows('pipeline.retry', retry.body.id)).toHaveLength(1);
    await done(retry.body.id);

    await push('slow', {
      '.platform.yaml':
        'pipeline:\n  steps:\n    - name: wait\n      commands: ["sleep 3"]\n  on: { api: true }\n',
    });
    const slow = await trigger('slow');
    const conflict = await t.request('POST', `${base()}/${slow.body.id}/retry`, { token: dev.token });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.message).toMatch(/pending|running/);
    expect(conflict.body.error.reason).toBe('pipeline.not_retryable');
    const cancel = await t.request('POST', `${base()}/${slow.body.id}/cancel`, {
      token: dev.token,
      noAuditCheck: true,
    });
    expect(cancel.status).toBe(200);
    await done(slow.body.id);
    expect(await auditRows('pipeline.cancel', slow.body.id)).toHaveLength(1);
    const again = await t.request('POST', `${base()}/${slow.body.id}/cancel`, { token: dev.token });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({
      reason: 'pipeline.not_cancellable',
      message: 'pipeline is already cancelled',
      details: [{ status: 'cancelled' }],
    });
    expect(await auditRows('pipeline.cancel', slow.body.id)).toHaveLength(1);
  });

  it('pipelines are numbered per project and addressable by number; steps by name', async () => {
    const first = await trigger('api-main', { GREETING: 'numbered' });
    expect(first.status).toBe(201);
    const second = await trigger('api-main');
    expect(second.body.number).toBe(first.body.number + 1);
    const p = await done(first.body.id);
    const byNumber = await t.request('GET', `${base()}/${first.body.number}`, { token: viewer.token });
    expect(byNumber.status).toBe(200);
    expect(byNumber.body).toMatchObject({ id: p.id, number: first.body.number, status: p.status });
    const listed = await t.request('GET', `${base()}?ref=api-main`, { token: viewer.token });
    expect((listed.body.items as { id: string; number: number }[]).find((i) => i.id === p.id)?.number).toBe(
      first.body.number,
    );
    const log = await t.request('GET', `${base()}/${first.body.number}/steps/show/logs`, {
      token: viewer.token,
    });
    expect(log.status).toBe(200);
    expect(log.text).toContain('greeting=numbered');
    const byIds = await t.request('GET', `${base()}/${p.id}/steps/${p.steps[0]!.id}/logs`, {
      token: viewer.token,
    });
    expect(byIds.text).toBe(log.text);
    expect(
      (await t.request('GET', `${base()}/${p.id}/steps/nope/logs`, { token: viewer.token })).status,
    ).toBe(404);
    expect((await t.request('GET', `${base()}/99999`, { token: viewer.token })).status).toBe(404);
    expect((await t.request('GET', `${base()}/not-a-ref`, { token: viewer.token })).status).toBe(400);
    // Another project counts from 1.
    const other = await t.request('POST', '/api/projects', {
      token: dev.token,
      body: { name: 'numbers-other' },
      // Pipelines finishing in the background write audit rows meanwhile.
      noAuditCheck: true,
    });
    const otherProject = other.body.id as string;
    const otherWork = path.join(tmp.dir, 'other');
    await gitOk(['clone', authUrl(t.baseUrl, 'ada', dev.token, '/ada/numbers-other.git'), otherWork]);
    writeFileSync(
      path.join(otherWork, '.platform.yaml'),
      'pipeline:\n  steps:\n    - name: a\n      commands: ["true"]\n  on: { push: false, api: true }\n',
    );
    await gitOk(['add', '-A'], { cwd: otherWork });
    await gitOk(['commit', '-q', '-m', 'ci'], { cwd: otherWork });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: otherWork });
    await t.platform.settle();
    const inOther = await t.request('POST', `/api/projects/${otherProject}/pipelines`, {
      token: dev.token,
      body: { git_ref: 'main' },
      noAuditCheck: true,
    });
    expect(inOther.status).toBe(201);
    expect(inOther.body.number).toBe(1);
    await done(second.body.id);
  });

  it('concurrency: cancel_in_progress cancels the older run; a plain group runs one at a time', async () => {
    await push('deploy', {
      '.platform.yaml': `pipeline:
  steps:
    - name: deploy
      commands: ["sleep 2"]
  concurrency: { group: "deploy-$COMMIT_BRANCH", cancel_in_progress: true }
  on: { api: true }
`,
    });
    const older = await trigger('deploy');
    await eventually(async () => (await get(older.body.id)).status === 'running', 10_000, 'older running');
    const newer = await trigger('deploy');
    expect(newer.status).toBe(201);
    expect(newer.body.concurrency_group).toBe('deploy-deploy');
    const o = await done(older.body.id);
    expect(o.status).toBe('cancelled');
    expect(o.error).toContain(`superseded by pipeline ${newer.body.id}`);
    expect((await done(newer.body.id)).status).toBe('success');

    await push('serial', {
      '.platform.yaml': `pipeline:
  steps:
    - name: one-at-a-time
      commands: ["sleep 0.5"]
  concurrency: serial-group
  on: { api: true }
`,
    });
    const a = await trigger('serial');
    const b = await trigger('serial');
    const [pa, pb] = [await done(a.body.id), await done(b.body.id)];
    expect([pa.status, pb.status]).toEqual(['success', 'success']);
    expect(new Date(pb.started_at!).getTime()).toBeGreaterThanOrEqual(new Date(pa.finished_at!).getTime());
  });

  it('artifacts: a directory as tar.gz and a file, listed and downloaded through the presigned URL', async () => {
    await push('artifacts', {
      '.platform.yaml': `pipeline:
  steps:
    - name: build
      commands:
        - mkdir -p coverage/html
        - echo '<h1>87%</h1>' > coverage/html/index.html
        - printf 'binary-ish report\\n' > report.txt
  artifacts:
    - { name: coverage, path: coverage/, expires: 7d }
    - { name: report, path: report.txt }
    - { name: missing, path: not-there/ }
  on: { api: true }
`,
    });
    const run = await trigger('artifacts');
    const p = await done(run.body.id);
    expect(p.status).toBe('success');
    const list = await t.request('GET', `${base()}/${p.id}/artifacts`, { token: viewer.token });
    expect(list.status).toBe(200);
    const items = list.body.items as {
      id: string;
      name: string;
      size_bytes: number;
      sha256: string;
      content_type: string;
      expires_at: string;
    }[];
    expect(items.map((a) => a.name)).toEqual(['coverage', 'report']);
    const coverage = items.find((a) => a.name === 'coverage')!;
    const report = items.find((a) => a.name === 'report')!;
    const days = (new Date(coverage.expires_at).getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(6.9);
    expect(days).toBeLessThan(7.1);
    expect(coverage.content_type).toBe('application/gzip');

    const download = async (id: string) => {
      const res = await t.request('GET', `/api/projects/${projectId}/artifacts/${id}/download`, {
        token: viewer.token,
      });
      expect(res.status).toBe(302);
      const fetched = await fetch(String(res.headers.location));
      expect(fetched.status).toBe(200);
      return Buffer.from(await fetched.arrayBuffer());
    };
    const reportBody = await download(report.id);
    expect(reportBody.toString()).toBe('binary-ish report\n');
    expect(report.size_bytes).toBe(reportBody.length);
    expect(report.sha256).toBe(createHash('sha256').update(reportBody).digest('hex'));

    const tgz = await download(coverage.id);
    expect(coverage.sha256).toBe(createHash('sha256').update(tgz).digest('hex'));
    const tarFile = path.join(tmp.dir, 'coverage.tgz');
    writeFileSync(tarFile, tgz);
    const listing = execFileSync('tar', ['-tzf', tarFile], { encoding: 'utf8' });
    expect(listing).toContain('./html/index.html');
    const index = execFileSync('tar', ['-xzOf', tarFile, './html/index.html'], { encoding: 'utf8' });
    expect(index).toBe('<h1>87%</h1>\n');

    const otherProject = await t.request(
      'GET',
      `/api/projects/${projectId}/artifacts/${crypto.randomUUID()}/download`,
      {
        token: viewer.token,
      },
    );
    expect(otherProject.status).toBe(404);
  });

  it('publish → deployments upserted with the new refs in the finishing transaction; expiry keeps published artifacts', async () => {
    await push('release', {
      '.platform.yaml': `pipeline:
  steps:
    - name: image
      commands: ["true"]
      publish: { image: "$REGISTRY/$PROJECT:$COMMIT_SHA", environment: production }
    - name: bundle
      commands: ["tar czf app.tgz .platform.yaml"]
      publish: { artifact: app.tgz, environment: staging }
  on: { api: true }
`,
    });
    const db = t.platform.drivers.db.db;
    const first = await done((await trigger('release')).body.id);
    expect(first.status).toBe('success');
    const prod = await db
      .selectFrom('deployments')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('environment', '=', 'production')
      .executeTakeFirstOrThrow();
    expect(prod).toMatchObject({
      image_ref: `registry.example.test/ada/api-builds:${first.commit_sha}`,
      pipeline_id: first.id,
      commit_sha: first.commit_sha,
      desired_status: 'active',
      generation: 1,
      deployed_by: dev.id,
    });
    const staging = await db
      .selectFrom('deployments')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('environment', '=', 'staging')
      .executeTakeFirstOrThrow();
    const published = await db
      .selectFrom('artifacts')
      .selectAll()
      .where('id', '=', staging.artifact_id!)
      .executeTakeFirstOrThrow();
    expect(published).toMatchObject({ pipeline_id: first.id, name: 'publish-bundle', expires_at: null });
    await eventually(async () => deployments.filter((d) => d.projectId === projectId).length >= 2);

    const second = await done((await trigger('release')).body.id);
    const prod2 = await db
      .selectFrom('deployments')
      .selectAll()
      .where('id', '=', prod.id)
      .executeTakeFirstOrThrow();
    expect(prod2).toMatchObject({ pipeline_id: second.id, generation: 2 });

    // Expiry: an expired artifact goes (object and row); one a deployment points at stays.
    await db
      .updateTable('artifacts')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('pipeline_id', '=', first.id)
      .execute();
    const firstArtifacts = await db
      .selectFrom('artifacts')
      .selectAll()
      .where('pipeline_id', '=', first.id)
      .execute();
    const secondStaging = await db
      .selectFrom('deployments')
      .select('artifact_id')
      .where('id', '=', staging.id)
      .executeTakeFirstOrThrow();
    expect(secondStaging.artifact_id).not.toBe(staging.artifact_id);
    // Point the deployment back at the first artifact: it must survive the expiry loop.
    await db
      .updateTable('deployments')
      .set({ artifact_id: staging.artifact_id })
      .where('id', '=', staging.id)
      .execute();
    const others = await db
      .updateTable('artifacts')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('name', 'in', ['coverage', 'report'])
      .where('project_id', '=', projectId)
      .returning(['id', 'object_key'])
      .execute();
    expect(others).toHaveLength(2);
    expect(await t.platform.scheduler.runNow(PIPELINE_LOOPS.artifactExpiry)).toBe(true);
    const left = await db.selectFrom('artifacts').select('id').where('pipeline_id', '=', first.id).execute();
    expect(left.map((r) => r.id)).toEqual([staging.artifact_id]);
    expect(firstArtifacts.length).toBe(1);
    expect(await t.platform.drivers.objects.head(firstArtifacts[0]!.object_key)).toBeDefined();
    for (const gone of others) {
      expect(
        await db.selectFrom('artifacts').select('id').where('id', '=', gone.id).executeTakeFirst(),
      ).toBeUndefined();
      expect(await t.platform.drivers.objects.head(gone.object_key)).toBeUndefined();
    }
  });

  it('a publish whose artifact is missing fails the step, and nothing is deployed', async () => {
    await push('bad-publish', {
      '.platform.yaml': `pipeline:
  steps:
    - name: ship
      commands: ["true"]
      publish: { artifact: nothing-here.tgz, environment: qa }
  on: { api: true }
`,
    });
    const p = await done((await trigger('bad-publish')).body.id);
    expect(p.status).toBe('failure');
    const step = (await t.request('GET', `${base()}/${p.id}`, { token: dev.token })).body.steps[0];
    expect(step.error).toContain('publish: ');
    const qa = await t.platform.drivers.db.db
      .selectFrom('deployments')
      .select('id')
      .where('project_id', '=', projectId)
      .where('environment', '=', 'qa')
      .execute();
    expect(qa).toEqual([]);
  });

  it('lists newest first with filters and a cursor', async () => {
    const all = await t.request('GET', `${base()}?limit=200`, { token: viewer.token });
    const items = all.body.items as Pipeline[];
    expect(items.length).toBeGreaterThan(5);
    const times = items.map((p) => new Date((p as unknown as { created_at: string }).created_at).getTime());
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const cancelled = await t.request('GET', `${base()}?status=cancelled`, { token: viewer.token });
    expect(cancelled.body.items.length).toBeGreaterThan(0);
    expect((cancelled.body.items as Pipeline[]).every((p) => p.status === 'cancelled')).toBe(true);
    const byRef = await t.request('GET', `${base()}?ref=refs/heads/release`, { token: viewer.token });
    expect((byRef.body.items as Pipeline[]).every((p) => p.git_ref === 'refs/heads/release')).toBe(true);
    expect(byRef.body.items.length).toBe(2);
    const byTrigger = await t.request('GET', `${base()}?trigger=push`, { token: viewer.token });
    expect(byTrigger.body.items).toEqual([]);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: Pipeline[]; next_cursor: string | null } } = await t.request(
        'GET',
        `${base()}?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        { token: viewer.token },
      );
      seen.push(...page.body.items.map((p) => p.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(items.map((p) => p.id));
    const badCursor = await t.request('GET', `${base()}?cursor=nonsense`, { token: viewer.token });
    expect(badCursor.status).toBe(400);
    const badStatus = await t.request('GET', `${base()}?status=exploded`, { token: viewer.token });
    expect(badStatus.status).toBe(400);
    const unknown = await t.request('GET', `${base()}/${crypto.randomUUID()}`, { token: viewer.token });
    expect(unknown.status).toBe(404);
  });

  it('schedules: a push to the default branch records on.schedule; a due schedule fires once', async () => {
    await gitOk(['checkout', '-q', '-B', 'main', 'api-main'], { cwd: work });
    const sha = await push('main', {
      '.platform.yaml': `pipeline:
  steps:
    - name: nightly
      commands: ["echo nightly"]
  on:
    push: { branches: [never-matches] }
    schedule: ["0 3 * * *"]
`,
    });
    const db = t.platform.drivers.db.db;
    const schedule = await db
      .selectFrom('pipeline_schedules')
      .selectAll()
      .where('project_id', '=', projectId)
      .executeTakeFirstOrThrow();
    expect(schedule).toMatchObject({ git_ref: 'refs/heads/main', cron: '0 3 * * *', is_active: true });
    expect(new Date(schedule.next_run_at).getUTCHours()).toBe(3);
    await db
      .updateTable('pipeline_schedules')
      .set({ next_run_at: new Date(Date.now() - 60_000) })
      .where('id', '=', schedule.id)
      .execute();
    const service = t.platform.services.pipeline;
    // Two concurrent firings (two instances would race the same way): one pipeline.
    const fired = await Promise.all([service.fireDueSchedules(), service.fireDueSchedules()]);
    expect(fired[0] + fired[1]).toBe(1);
    const after = await db
      .selectFrom('pipeline_schedules')
      .selectAll()
      .where('id', '=', schedule.id)
      .executeTakeFirstOrThrow();
    expect(new Date(after.next_run_at).getTime()).toBeGreaterThan(Date.now());
    const p = await done(after.last_pipeline_id!);
    expect(p).toMatchObject({
      trigger: 'schedule',
      commit_sha: sha,
      git_ref: 'refs/heads/main',
      status: 'success',
    });
    expect(await t.platform.scheduler.runNow(PIPELINE_LOOPS.schedules)).toBe(true);
  });

  it('merge requests opened / updated start a pipeline on the source head, linked to the MR', async () => {
    const sha = await push('feature/mr', {
      '.platform.yaml': `pipeline:
  steps:
    - name: check
      commands: ["echo checking $COMMIT_BRANCH"]
  on:
    mr: { actions: [opened, synchronized] }
`,
    });
    const db = t.platform.drivers.db.db;
    const mr = await db
      .insertInto('merge_requests')
      .values({
        project_id: projectId,
        number: 4242,
        title: 'feature',
        source_branch: 'feature/mr',
        target_branch: 'main',
        author_id: dev.id,
        head_sha: sha,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    t.platform.events.emit('mr.opened', {
      projectId,
      mergeRequestId: mr.id,
      number: 4242,
      title: 'feature',
      authorId: dev.id,
      sourceBranch: 'feature/mr',
      targetBranch: 'main',
      headSha: sha,
      recipientIds: [],
    });
    await t.platform.settle();
    const list = await t.request('GET', `${base()}?trigger=mr`, { token: dev.token });
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items[0]).toMatchObject({
      mr_id: mr.id,
      commit_sha: sha,
      git_ref: 'refs/heads/feature/mr',
    });
    expect((await done(list.body.items[0].id)).status).toBe('success');
  });

  it('through the merge request API: opened, a push (synchronized) and a reopen each run on the head', async () => {
    const first = await push('feature/real-mr', {
      '.platform.yaml': `pipeline:
  steps:
    - name: check
      commands: ["true"]
  on:
    mr: { actions: [opened, synchronized, reopened] }
`,
    });
    const opened = await t.request('POST', `/api/projects/${projectId}/merge-requests`, {
      token: dev.token,
      body: { source_branch: 'feature/real-mr', target_branch: 'main', title: 'real' },
      noAuditCheck: true,
    });
    expect(opened.status).toBe(201);
    await t.platform.settle();
    const second = await push('feature/real-mr', { 'more.txt': 'more' });
    const mrUrl = `/api/projects/${projectId}/merge-requests/${opened.body.number}`;
    for (const status of ['closed', 'open']) {
      const r = await t.request('PATCH', mrUrl, { token: dev.token, body: { status }, noAuditCheck: true });
      expect(r.status).toBe(200);
    }
    await t.platform.settle();
    const rows = await t.platform.drivers.db.db
      .selectFrom('pipelines')
      .select(['commit_sha', 'trigger'])
      .where('mr_id', '=', opened.body.id)
      .orderBy('created_at')
      .execute();
    expect(rows).toEqual([
      { commit_sha: first, trigger: 'mr' },
      { commit_sha: second, trigger: 'mr' },
      { commit_sha: second, trigger: 'mr' },
    ]);
  });

  it('an annotated tag builds the commit it points to', async () => {
    const sha = await push('tagged', {
      '.platform.yaml': `pipeline:
  steps:
    - name: check
      commands: ["test \\"$COMMIT_SHA\\" = \\"$(git rev-parse HEAD)\\""]
  on:
    push: { tags: ["rel-*"] }
`,
    });
    await gitOk(['tag', '-a', 'rel-1', '-m', 'release 1'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'rel-1'], { cwd: work });
    await t.platform.settle();
    const list = await t.request('GET', `${base()}?ref=rel-1`, { token: dev.token });
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items[0]).toMatchObject({ git_ref: 'refs/tags/rel-1', commit_sha: sha });
    expect((await done(list.body.items[0].id)).status).toBe('success');
  });
});
