import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../test/helpers/app.js';
import type { DbHandle } from '../store/index.js';
import type { PipelineStatus, PipelineStepStatus } from '../store/schema.js';
import {
  cancelPipeline,
  claimPipelines,
  closeUnstartedSteps,
  finishPipeline,
  finishStep,
  interruptPipeline,
  rejectPipeline,
  releaseCancelled,
  startStep,
  stopRunningSteps,
  supersedePipelines,
} from './transitions.js';
import { INTERRUPTED_ERROR } from './types.js';

const actor = { id: null, name: 'tester', ip: null };

describe('pipeline transitions', () => {
  let store: TestStore;
  let handle: DbHandle;
  let projectId: string;
  let number = 0;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    handle = await store.openDb();
    const user = await handle.db
      .insertInto('users')
      .values({ name: 'owner', email: 'owner@example.test', display_name: null, password_hash: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    const project = await handle.db
      .insertInto('projects')
      .values({ owner_id: user.id, name: 'p', display_name: null, repo_path: 'p.git' })
      .returning('id')
      .executeTakeFirstOrThrow();
    projectId = project.id;
  });
  afterAll(async () => {
    await handle?.close();
    await store?.drop();
  });
  beforeEach(async () => {
    // Each test claims from an empty queue.
    await handle.db
      .updateTable('pipelines')
      .set({ status: 'success' })
      .where('status', '=', 'pending')
      .execute();
  });

  /** A pipeline in `status` (set up directly) with one step per given step status. */
  async function pipeline(
    status: PipelineStatus,
    steps: PipelineStepStatus[] = [],
    group: string | null = null,
  ) {
    const row = await handle.db
      .insertInto('pipelines')
      .values({
        project_id: projectId,
        number: ++number,
        trigger: 'api',
        git_ref: 'refs/heads/main',
        commit_sha: 'a'.repeat(40),
        status,
        concurrency_group: group,
        variables: JSON.stringify({}),
        lease_holder: status === 'running' ? 'instance-a' : null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const stepIds: string[] = [];
    for (const [position, s] of steps.entries()) {
      const step = await handle.db
        .insertInto('pipeline_steps')
        .values({
          pipeline_id: row.id,
          name: `s${position}`,
          position,
          image: null,
          environment: '{}',
          status: s,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      stepIds.push(step.id);
    }
    return { row, stepIds };
  }

  const statusOf = async (id: string) =>
    (await handle.db.selectFrom('pipelines').select('status').where('id', '=', id).executeTakeFirstOrThrow())
      .status;
  const stepStatuses = async (pipelineId: string) =>
    (
      await handle.db
        .selectFrom('pipeline_steps')
        .select('status')
        .where('pipeline_id', '=', pipelineId)
        .orderBy('position')
        .execute()
    ).map((s) => s.status);
  const audits = async (id: string) =>
    (
      await handle.db
        .selectFrom('audit_log')
        .select(['action', 'actor_name', 'detail'])
        .where('resource_id', '=', id)
        .execute()
    ).map((a) => ({ action: a.action, actor: a.actor_name, detail: a.detail }));

  it('claim: pending → running with the lease of the claiming instance', async () => {
    const { row } = await pipeline('pending');
    const claimed = await claimPipelines(handle.db, {
      instanceId: 'instance-b',
      leaseSeconds: 30,
      capacity: 5,
    });
    expect(claimed.map((c) => c.id)).toEqual([row.id]);
    expect(claimed[0]).toMatchObject({ status: 'running', lease_holder: 'instance-b' });
    expect(claimed[0]!.started_at).not.toBeNull();
    // Already running: a second claim takes nothing.
    expect(
      await claimPipelines(handle.db, { instanceId: 'instance-c', leaseSeconds: 30, capacity: 5 }),
    ).toEqual([]);
  });

  it('claim: a concurrency group runs one pipeline at a time', async () => {
    await pipeline('running', [], 'deploy');
    const { row } = await pipeline('pending', [], 'deploy');
    expect(await claimPipelines(handle.db, { instanceId: 'i', leaseSeconds: 30, capacity: 5 })).toEqual([]);
    expect(await statusOf(row.id)).toBe('pending');
  });

  it('reject: pending → failure with the error', async () => {
    const { row } = await pipeline('pending');
    const rejected = await rejectPipeline(handle.db, row.id, 'bad yaml');
    expect(rejected).toMatchObject({ status: 'failure', error: 'bad yaml' });
    expect(rejected!.finished_at).not.toBeNull();
  });

  for (const to of ['success', 'failure', 'cancelled'] as const) {
    it(`finish: running → ${to}, lease released, unstarted steps closed, audited by the system`, async () => {
      const { row } = await pipeline('running', ['success', 'pending']);
      const finished = await finishPipeline(handle.db, row, to, to === 'failure' ? 'boom' : null);
      expect(finished).toMatchObject({ status: to, lease_holder: null, lease_expires_at: null });
      expect(await stepStatuses(row.id)).toEqual(['success', to === 'cancelled' ? 'cancelled' : 'skipped']);
      expect(await audits(row.id)).toEqual([
        {
          action: 'pipeline.finish',
          actor: 'system',
          detail: { status: to, ...(to === 'failure' ? { error: 'boom' } : {}) },
        },
      ]);
    });
  }

  it('finish is refused for a pipeline that is no longer running (nothing written)', async () => {
    const { row } = await pipeline('cancelled', ['pending']);
    expect(await finishPipeline(handle.db, row, 'success', null)).toBeNull();
    expect(await statusOf(row.id)).toBe('cancelled');
    expect(await stepStatuses(row.id)).toEqual(['pending']);
    expect(await audits(row.id)).toEqual([]);
  });

  it('interrupt: running → failure, its running steps fail as interrupted', async () => {
    const { row } = await pipeline('running', ['running', 'pending']);
    const failed = await interruptPipeline(handle.db, row);
    expect(failed).toMatchObject({ status: 'failure', error: INTERRUPTED_ERROR, lease_holder: null });
    expect(await stepStatuses(row.id)).toEqual(['failure', 'skipped']);
  });

  it('release of a cancelled run: status kept, lease released, open steps cancelled', async () => {
    const { row } = await pipeline('cancelled', ['running', 'pending']);
    await handle.db
      .updateTable('pipelines')
      .set({ lease_holder: 'instance-a' })
      .where('id', '=', row.id)
      .execute();
    const released = await releaseCancelled(handle.db, row.id);
    expect(released).toMatchObject({ status: 'cancelled', lease_holder: null });
    expect(await stepStatuses(row.id)).toEqual(['cancelled', 'cancelled']);
  });

  for (const from of ['pending', 'running'] as const) {
    it(`cancel: ${from} → cancelled by a person, audited with the previous status`, async () => {
      const { row } = await pipeline(from, ['pending']);
      const cancelled = await cancelPipeline(handle.db, actor, row);
      expect(cancelled).toMatchObject({ status: 'cancelled' });
      expect(await stepStatuses(row.id)).toEqual(['cancelled']);
      expect(await audits(row.id)).toEqual([
        { action: 'pipeline.cancel', actor: 'tester', detail: { previous_status: from } },
      ]);
    });
  }

  it('cancel is refused for a finished pipeline', async () => {
    const { row } = await pipeline('success');
    expect(await cancelPipeline(handle.db, actor, row)).toBeNull();
    expect(await statusOf(row.id)).toBe('success');
    expect(await audits(row.id)).toEqual([]);
  });

  it('supersede: the pending and running pipelines of the group → cancelled, with their previous status', async () => {
    const running = await pipeline('running', ['running'], 'g1');
    const pending = await pipeline('pending', ['pending'], 'g1');
    const done = await pipeline('success', [], 'g1');
    const newer = await pipeline('pending', [], 'g1');
    const superseded = await supersedePipelines(handle.db, { projectId, group: 'g1', by: newer.row.id });
    expect(superseded.sort((a, b) => a.previous.localeCompare(b.previous))).toEqual([
      { id: pending.row.id, previous: 'pending' },
      { id: running.row.id, previous: 'running' },
    ]);
    expect(await statusOf(running.row.id)).toBe('cancelled');
    expect(await statusOf(pending.row.id)).toBe('cancelled');
    expect(await statusOf(done.row.id)).toBe('success');
    expect(await statusOf(newer.row.id)).toBe('pending');
    expect(await stepStatuses(pending.row.id)).toEqual(['cancelled']);
    // The running step is left to the executing instance (it stops it and records it).
    expect(await stepStatuses(running.row.id)).toEqual(['running']);
  });
});

describe('pipeline step transitions', () => {
  let store: TestStore;
  let handle: DbHandle;
  let pipelineId: string;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    handle = await store.openDb();
    const user = await handle.db
      .insertInto('users')
      .values({ name: 'owner', email: 'owner@example.test', display_name: null, password_hash: null })
      .returning('id')
      .executeTakeFirstOrThrow();
    const project = await handle.db
      .insertInto('projects')
      .values({ owner_id: user.id, name: 'p', display_name: null, repo_path: 'p.git' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const p = await handle.db
      .insertInto('pipelines')
      .values({
        project_id: project.id,
        number: 1,
        trigger: 'api',
        git_ref: 'refs/heads/main',
        commit_sha: 'a'.repeat(40),
        status: 'running',
        variables: JSON.stringify({}),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    pipelineId = p.id;
  });
  afterAll(async () => {
    await handle?.close();
    await store?.drop();
  });
  beforeEach(async () => {
    await handle.db.deleteFrom('pipeline_steps').execute();
  });

  async function step(status: PipelineStepStatus, position = 0): Promise<string> {
    const s = await handle.db
      .insertInto('pipeline_steps')
      .values({
        pipeline_id: pipelineId,
        name: `s${position}`,
        position,
        image: null,
        environment: '{}',
        status,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return s.id;
  }
  const row = (id: string) =>
    handle.db.selectFrom('pipeline_steps').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  it('start: pending → running with its start time', async () => {
    const id = await step('pending');
    const at = new Date('2026-01-01T00:00:00Z');
    expect(await startStep(handle.db, id, at)).toBe(true);
    expect(await row(id)).toMatchObject({ status: 'running', started_at: at });
  });

  it('start is refused for a step closed meanwhile', async () => {
    const id = await step('cancelled');
    expect(await startStep(handle.db, id, new Date())).toBe(false);
    expect((await row(id)).status).toBe('cancelled');
  });

  for (const to of ['success', 'failure', 'cancelled'] as const) {
    it(`finish: running → ${to} with the run's result`, async () => {
      const id = await step('running');
      const at = new Date('2026-01-01T00:01:00Z');
      const result = {
        status: to,
        exitCode: to === 'failure' ? 2 : 0,
        error: null,
        durationMs: 1500,
        finishedAt: at,
      };
      expect(await finishStep(handle.db, id, result)).toBe(true);
      expect(await row(id)).toMatchObject({
        status: to,
        exit_code: result.exitCode,
        duration_ms: 1500,
        finished_at: at,
      });
    });
  }

  for (const to of ['skipped', 'cancelled'] as const) {
    it(`close: pending → ${to}; steps that started are left alone`, async () => {
      const pending = await step('pending', 0);
      const running = await step('running', 1);
      expect(await closeUnstartedSteps(handle.db, pipelineId, to)).toBe(1);
      expect((await row(pending)).status).toBe(to);
      expect((await row(running)).status).toBe('running');
    });
  }

  for (const to of ['failure', 'cancelled'] as const) {
    it(`stop: running → ${to}`, async () => {
      const running = await step('running', 0);
      const done = await step('success', 1);
      expect(
        await stopRunningSteps(handle.db, pipelineId, to, to === 'failure' ? INTERRUPTED_ERROR : null),
      ).toBe(1);
      expect(await row(running)).toMatchObject({ status: to });
      expect((await row(done)).status).toBe('success');
    });
  }
});
