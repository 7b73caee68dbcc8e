/**
 * The pipeline engine end to end: real pushes with stock git to a listening test platform, pipelines
 * run on the local runner, results observed through the API, the database and the object store.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PipelineFinishedEvent } from '../src/pipeline/index.js';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { processesWith } from './helpers/process.js';

interface Step {
  id: string;
  name: string;
  status: string;
  exit_code: number | null;
  error: string | null;
  log_size: number | null;
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
  finished_at: string | null;
  duration_ms: number | null;
  steps: Step[];
}

describe.skipIf(servicesMissing)('pipelines triggered by git pushes', () => {
  let t: TestPlatform;
  let dev: { id: string; token: string };
  let projectId: string;
  let work: string;
  const tmp = tempDir('platform-pipelines-');
  const finished: PipelineFinishedEvent[] = [];

  beforeAll(async () => {
    t = await createTestPlatform({ listen: true, config: { PLATFORM_PIPELINE_CONCURRENCY: '4' } });
    t.platform.events.on('pipeline.finished', (e) => {
      finished.push(e);
    });
    t.platform.startBackground();
    dev = await t.createUser('pia', ['developer']);
    const res = await t.request('POST', '/api/projects', { token: dev.token, body: { name: 'builds' } });
    expect(res.status).toBe(201);
    projectId = res.body.id;
    work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'pia', dev.token, '/pia/builds.git'), work]);
  });
  afterAll(async () => {
    await t?.close();
    tmp.cleanup();
  });

  /** Commits `files` on `branch` (created from the current HEAD) and pushes it; returns the commit. */
  async function push(branch: string, files: Record<string, string>, message = `build ${branch}`) {
    await gitOk(['checkout', '-q', '-B', branch], { cwd: work });
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
      writeFileSync(path.join(work, name), content);
    }
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '--allow-empty', '-m', message], { cwd: work });
    await gitOk(['push', '-q', '-f', 'origin', `HEAD:refs/heads/${branch}`], { cwd: work });
    return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
  }

  async function pipelineOf(sha: string, ref?: string): Promise<Pipeline> {
    const found = await eventually(
      async () => {
        const list = await t.request('GET', `/api/projects/${projectId}/pipelines?limit=200`, {
          token: dev.token,
        });
        return (list.body.items as Pipeline[]).find(
          (p) => p.commit_sha === sha && (!ref || p.git_ref === ref),
        );
      },
      10_000,
      `a pipeline for ${sha}`,
    );
    return get(found!.id);
  }

  async function get(id: string): Promise<Pipeline> {
    const res = await t.request('GET', `/api/projects/${projectId}/pipelines/${id}`, { token: dev.token });
    expect(res.status).toBe(200);
    return res.body;
  }

  async function finishedPipeline(id: string, timeoutMs = 20_000): Promise<Pipeline> {
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

  async function log(p: Pipeline, stepName: string, offset = 0) {
    const step = p.steps.find((s) => s.name === stepName)!;
    return t.request(
      'GET',
      `/api/projects/${projectId}/pipelines/${p.id}/steps/${step.id}/logs?offset=${offset}`,
      {
        token: dev.token,
      },
    );
  }

  const yaml = (body: string) => `pipeline:\n${body}`;

  it('push → pipeline success, with each step log stored and readable from an offset', async () => {
    const sha = await push('main', {
      '.platform.yaml': yaml(`  steps:
    - name: hello
      commands: ["echo hello from $STEP_NAME on $COMMIT_BRANCH", "echo sha=$COMMIT_SHA ci=$CI"]
    - name: after
      depends_on: [hello]
      commands: ["echo pipeline=$PIPELINE_ID project=$PROJECT"]
`),
    });
    const p = await finishedPipeline((await pipelineOf(sha)).id);
    expect(p.status).toBe('success');
    expect(p.trigger).toBe('push');
    expect(p.git_ref).toBe('refs/heads/main');
    expect(p.steps.map((s) => [s.name, s.status, s.exit_code])).toEqual([
      ['hello', 'success', 0],
      ['after', 'success', 0],
    ]);
    const hello = await log(p, 'hello');
    expect(hello.status).toBe(200);
    expect(hello.headers['content-type']).toMatch(/^text\/plain/);
    expect(hello.text).toContain('hello from hello on main');
    expect(hello.text).toContain(`sha=${sha} ci=true`);
    expect(hello.headers['x-log-complete']).toBe('true');
    expect(Number(hello.headers['x-next-offset'])).toBe(Buffer.byteLength(hello.text));
    expect(p.steps[0]!.log_size).toBe(Buffer.byteLength(hello.text));
    const after = await log(p, 'after');
    expect(after.text).toContain(`pipeline=${p.id} project=pia/builds`);
    // Resuming from an offset gives the rest.
    const from = hello.text.indexOf('sha=');
    const rest = await log(p, 'hello', Buffer.byteLength(hello.text.slice(0, from)));
    expect(rest.text).toBe(hello.text.slice(from));
    // Stored in the object store under the spec's key.
    const stored = await t.platform.drivers.objects.head(`logs/pipelines/${p.id}/hello.log`);
    expect(stored?.size).toBe(Buffer.byteLength(hello.text));
    await eventually(async () => finished.some((e) => e.pipelineId === p.id && e.status === 'success'));
    const event = finished.find((e) => e.pipelineId === p.id)!;
    expect(event).toMatchObject({ projectId, ref: 'main', triggeredBy: dev.id });
  });

  it('streams a running step over SSE: backlog, live output, then end', async () => {
    const sha = await push('stream', {
      '.platform.yaml': yaml(`  steps:
    - name: slow
      commands: ["echo first line", "sleep 1.5", "echo second line", "sleep 0.5", "echo third line"]
`),
    });
    const created = await pipelineOf(sha);
    const stepId = created.steps[0]!.id;
    await eventually(
      async () => (await get(created.id)).steps[0]!.status === 'running',
      10_000,
      'step running',
    );
    // Wait for the first line so the stream gets it as backlog and the rest live.
    await eventually(
      async () => (await log(await get(created.id), 'slow')).text.includes('first line'),
      10_000,
    );
    const res = await fetch(
      `${t.baseUrl}/api/projects/${projectId}/pipelines/${created.id}/steps/${stepId}/logs`,
      {
        headers: { authorization: `Bearer ${dev.token}`, accept: 'text/event-stream' },
      },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const body = await res.text(); // the server ends the stream after `event: end`
    const events = body
      .split('\n\n')
      .filter((block) => block.includes('data: '))
      .map((block) => ({
        event: /^event: (.+)$/m.exec(block)?.[1] ?? 'message',
        data: JSON.parse(/^data: (.+)$/m.exec(block)![1]!),
      }));
    const chunks = events
      .filter((e) => e.event === 'message')
      .map((e) => e.data as { offset: number; data: string });
    const text = chunks.map((c) => c.data).join('');
    expect(text).toContain('first line');
    expect(text).toContain('second line');
    expect(text).toContain('third line');
    // Offsets are contiguous byte offsets.
    let expected = 0;
    for (const c of chunks) {
      expect(c.offset).toBe(expected);
      expected += Buffer.byteLength(c.data);
    }
    const end = events.at(-1)!;
    expect(end.event).toBe('end');
    expect(end.data).toMatchObject({ status: 'success', offset: expected });
    const p = await finishedPipeline(created.id);
    expect((await log(p, 'slow')).text).toBe(text);
  });

  it('SSE of a finished step sends the stored log from the offset, then end', async () => {
    const sha = await push('stored-sse', {
      '.platform.yaml': yaml(`  steps:
    - name: one
      commands: ["echo 0123456789"]
`),
    });
    const p = await finishedPipeline((await pipelineOf(sha)).id);
    const full = (await log(p, 'one')).text;
    const res = await fetch(
      `${t.baseUrl}/api/projects/${projectId}/pipelines/${p.id}/steps/${p.steps[0]!.id}/logs?offset=5`,
      { headers: { authorization: `Bearer ${dev.token}`, accept: 'text/event-stream' } },
    );
    const body = await res.text();
    const data = [...body.matchAll(/^data: (.+)$/gm)].map((m) => JSON.parse(m[1]!));
    expect(data[0]).toEqual({ offset: 5, data: full.slice(5) });
    expect(body).toMatch(/event: end\ndata: \{"offset":\d+,"status":"success"\}/);
    // A reconnecting EventSource sends the last event id (a byte offset): it wins over ?offset=.
    const resumed = await fetch(
      `${t.baseUrl}/api/projects/${projectId}/pipelines/${p.id}/steps/${p.steps[0]!.id}/logs?offset=0`,
      {
        headers: { authorization: `Bearer ${dev.token}`, accept: 'text/event-stream', 'last-event-id': '7' },
      },
    );
    const again = [...(await resumed.text()).matchAll(/^data: (.+)$/gm)].map((m) => JSON.parse(m[1]!));
    expect(again[0]).toEqual({ offset: 7, data: full.slice(7) });
  });

  it('a failing step fails the pipeline and skips its dependents; allow_failure lets them run', async () => {
    const sha = await push('failing', {
      '.platform.yaml': yaml(`  steps:
    - name: flaky
      allow_failure: true
      commands: ["echo tolerated", "exit 3"]
    - name: after-flaky
      depends_on: [flaky]
      commands: ["echo ran after the tolerated failure"]
    - name: broken
      commands: ["echo about to fail", "false", "echo never printed"]
    - name: needs-broken
      depends_on: [broken]
      commands: ["echo never"]
    - name: transitively
      depends_on: [needs-broken]
      commands: ["echo never"]
`),
    });
    const p = await finishedPipeline((await pipelineOf(sha)).id);
    expect(p.status).toBe('failure');
    const byName = Object.fromEntries(p.steps.map((s) => [s.name, s]));
    expect(byName.flaky).toMatchObject({ status: 'failure', exit_code: 3 });
    expect(byName['after-flaky']!.status).toBe('success');
    expect(byName.broken).toMatchObject({ status: 'failure', exit_code: 1 });
    expect(byName['needs-broken']!.status).toBe('skipped');
    expect(byName.transitively!.status).toBe('skipped');
    const broken = await log(p, 'broken');
    expect(broken.text).toContain('about to fail');
    expect(broken.text).not.toContain('never printed'); // set -e
    await eventually(async () => finished.some((e) => e.pipelineId === p.id && e.status === 'failure'));
  });

  it('runs independent steps in parallel (two 1 s steps overlap)', async () => {
    const sha = await push('parallel', {
      '.platform.yaml': yaml(`  steps:
    - name: left
      commands: ["sleep 1"]
    - name: right
      commands: ["sleep 1"]
`),
    });
    const p = await finishedPipeline((await pipelineOf(sha)).id);
    expect(p.status).toBe('success');
    const [a, b] = p.steps.map((s) => ({
      start: new Date(s.started_at!).getTime(),
      end: new Date(s.finished_at!).getTime(),
    }));
    // Each ran while the other ran.
    expect(a!.start).toBeLessThan(b!.end);
    expect(b!.start).toBeLessThan(a!.end);
    const span = Math.max(a!.end, b!.end) - Math.min(a!.start, b!.start);
    expect(span).toBeLessThan(1900);
  });

  it('a timeout kills the whole process group of the step', async () => {
    const marker = `4242.${Date.now() % 100000}`;
    const sha = await push('timeout', {
      '.platform.yaml': yaml(`  steps:
    - name: hangs
      timeout: 1s
      commands: ["(sleep ${marker}; echo escaped) &", "sleep ${marker}"]
`),
    });
    const created = await pipelineOf(sha);
    await eventually(async () => processesWith(marker).length > 0, 10_000, 'the step processes');
    const p = await finishedPipeline(created.id);
    expect(p.status).toBe('failure');
    expect(p.steps[0]!.status).toBe('failure');
    expect(p.steps[0]!.error).toMatch(/tim(ed|e) ?out/i);
    await eventually(async () => processesWith(marker).length === 0, 10_000, 'no step process left');
  });

  it('cancel stops a running pipeline within seconds and kills its processes', async () => {
    const marker = `4343.${Date.now() % 100000}`;
    const sha = await push('cancel', {
      '.platform.yaml': yaml(`  steps:
    - name: long
      commands: ["(sleep ${marker}) &", "sleep ${marker}"]
    - name: later
      depends_on: [long]
      commands: ["echo never"]
`),
    });
    const created = await pipelineOf(sha);
    await eventually(async () => processesWith(marker).length > 0, 10_000, 'the step processes');
    const res = await t.request('POST', `/api/projects/${projectId}/pipelines/${created.id}/cancel`, {
      token: dev.token,
      noAuditCheck: true,
    });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('cancelled');
    const started = Date.now();
    await eventually(async () => processesWith(marker).length === 0, 10_000, 'no step process left');
    expect(Date.now() - started).toBeLessThan(10_000);
    const p = await finishedPipeline(created.id);
    expect(p.status).toBe('cancelled');
    expect(p.steps.map((s) => s.status)).toEqual(['cancelled', 'cancelled']);
    const again = await t.request('POST', `/api/projects/${projectId}/pipelines/${created.id}/cancel`, {
      token: dev.token,
    });
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain('cancelled');
  });

  it('injects secrets and masks them in stored and streamed logs, also split across chunks', async () => {
    const secret = 'hunter2-s3cr3t-value';
    const put = await t.request('POST', `/api/projects/${projectId}/secrets`, {
      token: t.adminToken,
      body: { name: 'DEPLOY_TOKEN', value: secret, scope: 'pipeline' },
    });
    expect(put.status).toBe(201);
    const sha = await push('secrets', {
      '.platform.yaml': yaml(`  steps:
    - name: uses-secret
      environment: { TOKEN: "\${{ secrets.DEPLOY_TOKEN }}", PLAIN: "visible" }
      commands:
        - 'test "\${#TOKEN}" = ${secret.length} && echo token-ok $PLAIN'
        - 'echo "whole: $TOKEN"'
        - 'printf "split: %s" "\${TOKEN%%-s3*}"; sleep 0.3; printf "%s end\\n" "-s3\${TOKEN#*-s3}"'
`),
    });
    const p = await finishedPipeline((await pipelineOf(sha)).id);
    expect(p.status).toBe('success');
    const text = (await log(p, 'uses-secret')).text;
    expect(text).toContain('token-ok visible');
    expect(text).toContain('whole: ***');
    expect(text).toContain('split: *** end');
    expect(text).not.toContain('hunter2');
    const sse = await fetch(
      `${t.baseUrl}/api/projects/${projectId}/pipelines/${p.id}/steps/${p.steps[0]!.id}/logs`,
      { headers: { authorization: `Bearer ${dev.token}`, accept: 'text/event-stream' } },
    );
    const streamed = await sse.text();
    expect(streamed).toContain('split: *** end');
    expect(streamed).not.toContain('hunter2');
  });

  it('a missing secret fails that step with the resolution message', async () => {
    const sha = await push('missing-secret', {
      '.platform.yaml': yaml(`  steps:
    - name: needs-secret
      environment: { TOKEN: "\${{ secrets.NOT_DEFINED }}" }
      commands: ["echo never"]
`),
    });
    const p = await finishedPipeline((await pipelineOf(sha)).id);
    expect(p.status).toBe('failure');
    expect(p.steps[0]!.status).toBe('failure');
    expect(p.steps[0]!.error).toContain('"NOT_DEFINED" not defined for scope pipeline');
  });

  it('an invalid definition gives a failed pipeline with the precise message', async () => {
    const sha = await push('invalid', {
      '.platform.yaml': yaml(`  steps:
    - name: ok
      commands: ["true"]
    - name: bad
      commands: "not a list"
`),
    });
    const p = await pipelineOf(sha);
    expect(p.status).toBe('failure');
    expect(p.error).toMatch(/^steps\[1\]\.commands: .*\(line 6\)$/);
    expect(p.finished_at).not.toBeNull();
    expect(p.steps).toEqual([]);
    await eventually(async () => finished.some((e) => e.pipelineId === p.id && e.status === 'failure'));
  });

  it('[skip ci] in the commit message and pushes without a definition create no pipeline', async () => {
    const skipped = await push(
      'skipped',
      { '.platform.yaml': yaml('  steps:\n    - name: a\n      commands: ["true"]\n') },
      'docs only [skip ci]',
    );
    const ciSkip = await push('skipped', { 'x.txt': 'x' }, 'more [ci skip]');
    await gitOk(['checkout', '-q', '--orphan', 'no-definition'], { cwd: work });
    await gitOk(['rm', '-rq', '--cached', '.'], { cwd: work });
    rmSync(path.join(work, '.platform.yaml'));
    const bare = await push('no-definition', { 'README.md': 'no pipeline here' });
    await t.platform.settle();
    const list = await t.request('GET', `/api/projects/${projectId}/pipelines?limit=200`, {
      token: dev.token,
    });
    const shas = (list.body.items as Pipeline[]).map((p) => p.commit_sha);
    expect(shas).not.toContain(skipped);
    expect(shas).not.toContain(ciSkip);
    expect(shas).not.toContain(bare);
  });

  it('honours branch and tag filters of on.push, and `when` branch filters of steps', async () => {
    const def = yaml(`  steps:
    - name: always
      commands: ["true"]
    - name: release-only
      when: { branches: ["release/*"] }
      commands: ["true"]
  on:
    push: { branches: ["release/*"], tags: ["v*"] }
`);
    const feature = await push('feature-x', { '.platform.yaml': def });
    const release = await push('release/1.0', { '.platform.yaml': def });
    await gitOk(['tag', '-f', 'v1.0.0'], { cwd: work });
    await gitOk(['push', '-q', '-f', 'origin', 'refs/tags/v1.0.0'], { cwd: work });
    await gitOk(['tag', '-f', 'other-tag'], { cwd: work });
    await gitOk(['push', '-q', '-f', 'origin', 'refs/tags/other-tag'], { cwd: work });
    const onRelease = await pipelineOf(release, 'refs/heads/release/1.0');
    expect(onRelease.steps.map((s) => s.name)).toEqual(['always', 'release-only']);
    await t.platform.settle();
    const list = await t.request('GET', `/api/projects/${projectId}/pipelines?limit=200`, {
      token: dev.token,
    });
    const items = list.body.items as Pipeline[];
    expect(items.some((p) => p.commit_sha === feature)).toBe(false);
    const tagBuilds = items.filter((p) => p.git_ref.startsWith('refs/tags/'));
    expect(tagBuilds.map((p) => p.git_ref)).toEqual(['refs/tags/v1.0.0']);
    // A tag build has no branch: the branch-filtered step is not part of it.
    expect((await get(tagBuilds[0]!.id)).steps.map((s) => s.name)).toEqual(['always']);
  });

  it('leaves no workspace or running log behind', async () => {
    await eventually(async () => {
      const list = await t.request('GET', `/api/projects/${projectId}/pipelines?limit=200`, {
        token: dev.token,
      });
      return (list.body.items as Pipeline[]).every((p) => p.status !== 'pending' && p.status !== 'running');
    }, 20_000);
    await t.platform.settle();
    const root = path.join(t.config.data_dir, 'workspaces');
    const leftovers = () =>
      ['runs', 'logs'].flatMap((d) =>
        existsSync(path.join(root, d)) ? readdirSync(path.join(root, d)).map((f) => `${d}/${f}`) : [],
      );
    // Workspaces are removed right after the pipeline's final transaction.
    await eventually(async () => leftovers().length === 0, 10_000, 'workspaces removed').catch(() => {});
    expect(leftovers()).toEqual([]);
  });
});
