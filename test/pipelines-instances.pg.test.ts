/**
 * Two platform instances sharing one PostgreSQL database, one Valkey and one data directory
 * (repositories and the object store): queued pipelines run exactly once across both, and the live
 * log of a step running on one instance streams from the other.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPlatform,
  createTestStore,
  eventually,
  servicesMissing,
  type TestPlatform,
  type TestStore,
} from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';

describe.skipIf(servicesMissing)('pipelines on two instances', () => {
  let store: TestStore;
  let a: TestPlatform;
  let b: TestPlatform;
  let token: string;
  let projectId: string;
  const shared = mkdtempSync(path.join(tmpdir(), 'platform-shared-'));
  // Each run reports itself over the host network (the sandbox lets a step write nowhere but its
  // workspace): the requests count how often each pipeline ran.
  const runs: string[] = [];
  const counter = createServer((req, res) => {
    runs.push((req.url ?? '').slice(1));
    res.end('ok');
  });
  const tmp = tempDir('platform-instances-');
  const finishedOn = { a: [] as string[], b: [] as string[] };

  beforeAll(async () => {
    store = await createTestStore('postgres');
    await new Promise<void>((resolve) => counter.listen(0, '127.0.0.1', resolve));
    const port = (counter.address() as AddressInfo).port;
    const config = {
      PLATFORM_DATA_DIR: shared,
      PLATFORM_PIPELINE_CONCURRENCY: '3',
    };
    a = await createTestPlatform({ store, listen: true, config });
    b = await createTestPlatform({ store, listen: true, config, bare: true });
    a.platform.events.on('pipeline.finished', (e) => void finishedOn.a.push(e.pipelineId));
    b.platform.events.on('pipeline.finished', (e) => void finishedOn.b.push(e.pipelineId));
    a.platform.startBackground();
    b.platform.startBackground();
    const dev = await a.createUser('duo', ['developer']);
    token = dev.token;
    const res = await a.request('POST', '/api/projects', { token, body: { name: 'twins' } });
    expect(res.status).toBe(201);
    projectId = res.body.id;
    const work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(a.baseUrl, 'duo', token, '/duo/twins.git'), work]);
    await gitOk(['checkout', '-q', '-b', 'main'], { cwd: work });
    const def = `pipeline:
  steps:
    - name: mark
      commands: ['node -e "fetch(\\"http://127.0.0.1:${port}/\\" + process.env.PIPELINE_ID).then((r) => r.text())"']
  on: { api: true }
`;
    const slow = `pipeline:
  steps:
    - name: talk
      commands: ["echo line-one", "sleep 1.5", "echo line-two", "sleep 1", "echo line-three"]
  on: { api: true }
`;
    writeFileSync(path.join(work, '.platform.yaml'), def);
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['commit', '-q', '-m', 'mark'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
    await gitOk(['checkout', '-q', '-b', 'slow'], { cwd: work });
    writeFileSync(path.join(work, '.platform.yaml'), slow);
    await gitOk(['commit', '-q', '-am', 'slow'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/slow'], { cwd: work });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await store?.drop();
    await new Promise<void>((resolve) => counter.close(() => resolve()));
    rmSync(shared, { recursive: true, force: true });
    tmp.cleanup();
  });

  it('30 queued pipelines each run exactly once, spread over both instances', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const target = i % 2 === 0 ? a : b;
      const res = await target.request('POST', `/api/projects/${projectId}/pipelines`, {
        token,
        body: { git_ref: 'main' },
        noAuditCheck: true,
      });
      expect(res.status).toBe(201);
      ids.push(res.body.id);
    }
    const db = a.platform.drivers.db.db;
    await eventually(
      async () => {
        const rows = await db.selectFrom('pipelines').select('status').where('id', 'in', ids).execute();
        return rows.every((r) => r.status === 'success');
      },
      60_000,
      'all 30 pipelines to succeed',
    );
    expect(runs).toHaveLength(30);
    expect(new Set(runs)).toEqual(new Set(ids));
    await eventually(async () => finishedOn.a.length + finishedOn.b.length >= 30);
    // Each finished exactly once, on one instance; both instances took part.
    expect(finishedOn.a.filter((id) => finishedOn.b.includes(id))).toEqual([]);
    expect(new Set([...finishedOn.a, ...finishedOn.b])).toEqual(new Set(ids));
    expect(finishedOn.a.length).toBeGreaterThan(0);
    expect(finishedOn.b.length).toBeGreaterThan(0);
    const finishes = await db
      .selectFrom('audit_log')
      .select('resource_id')
      .where('action', '=', 'pipeline.finish')
      .where('resource_id', 'in', ids)
      .execute();
    expect(finishes).toHaveLength(30);
  });

  it('the live log of a step running on one instance streams from the other', async () => {
    const res = await a.request('POST', `/api/projects/${projectId}/pipelines`, {
      token,
      body: { git_ref: 'slow' },
      noAuditCheck: true,
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const stepId = res.body.steps[0].id as string;
    const db = a.platform.drivers.db.db;
    const running = await eventually(
      async () => {
        const row = await db
          .selectFrom('pipelines')
          .select(['lease_holder', 'status'])
          .where('id', '=', id)
          .executeTakeFirst();
        const step = await db
          .selectFrom('pipeline_steps')
          .select('status')
          .where('id', '=', stepId)
          .executeTakeFirst();
        return row?.lease_holder && step?.status === 'running' ? row : undefined;
      },
      10_000,
      'the step to run',
    );
    if (!running) throw new Error('unreachable');
    const executing = running.lease_holder === a.platform.scheduler.instanceId ? a : b;
    const other = executing === a ? b : a;
    expect(running.lease_holder).toBe(executing.platform.scheduler.instanceId);
    const response = await fetch(
      `${other.baseUrl}/api/projects/${projectId}/pipelines/${id}/steps/${stepId}/logs`,
      {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      },
    );
    expect(response.status).toBe(200);
    const body = await response.text();
    const chunks = [...body.matchAll(/^data: (.+)$/gm)].map(
      (m) => JSON.parse(m[1]!) as { offset: number; data: string },
    );
    const text = chunks
      .filter((c) => typeof c.data === 'string')
      .map((c) => c.data)
      .join('');
    expect(text).toContain('line-one'); // backlog, replayed by the executing instance
    expect(text).toContain('line-two'); // live
    expect(text).toContain('line-three');
    expect(body).toMatch(/event: end\ndata: \{"offset":\d+,"status":"success"\}/);
    // The test helper gives each instance its own filesystem object store (in production both use S3):
    // the stored log is read where it was stored.
    const stored = await executing.request(
      'GET',
      `/api/projects/${projectId}/pipelines/${id}/steps/${stepId}/logs`,
      {
        token,
      },
    );
    expect(stored.text).toBe(text);
  });
});
