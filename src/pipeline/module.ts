import path from 'node:path';
import type { AuthService } from '../auth/index.js';
import type { LogSink } from '../core/log-sink.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { ProjectsService } from '../projects/index.js';
import { createKubernetesRunner, createLocalRunner, createMasker } from '../runners/index.js';
import type { Runner } from '../runners/types.js';
import type { SecretsService } from '../secrets/index.js';
import { parseDuration } from './definition.js';
import { PipelineExecutor } from './executor.js';
import type { StreamSet } from './log-stream.js';
import { pipelineRoutes } from './routes.js';
import { PipelineService } from './service.js';
import { subscribeTriggers } from './trigger.js';

/** Loop names in the scheduler. */
export const PIPELINE_LOOPS = {
  claim: 'pipeline.claim',
  heartbeat: 'pipeline.heartbeat',
  schedules: 'pipeline.schedules',
  artifactExpiry: 'pipeline.artifact-expiry',
} as const;

export interface PipelineModuleOptions {
  /** Poll interval of the claim loop (a pipeline queued on any instance also wakes it at once). */
  claimIntervalMs?: number;
  /** Replaces the runner the `executor` setting selects (tests). */
  runner?: Runner;
}

function createRunner(ctx: ModuleContext, workRoot: string): Runner {
  const log = ctx.log.child({ module: 'runner' });
  if (ctx.config.executor === 'kubernetes') {
    return createKubernetesRunner({
      kubeConfig: ctx.config.kubeconfig,
      namespace: ctx.config.k8s_namespace,
      resources: { cpu: ctx.config.k8s_step_cpu, memory: ctx.config.k8s_step_memory },
      log,
    });
  }
  // Steps must not see the platform's data (database, keys, other repositories): only their workspace.
  return createLocalRunner({
    workRoot,
    bwrap: ctx.config.runner_bwrap,
    hidePaths: [ctx.config.data_dir, path.dirname(workRoot)],
    readOnlyPaths: ctx.config.runner_readonly_paths,
    sandboxUser: { uid: ctx.config.runner_uid, gid: ctx.config.runner_uid },
    log,
  });
}

/**
 * The pipeline engine: triggers (push, merge requests, api, schedules), the queue and its executor
 * (every instance claims), live and stored logs, artifacts and the deployments hand-off.
 */
export function createPipelineModule(
  ctx: ModuleContext,
  deps: { projects: ProjectsService; secrets: SecretsService; auth: AuthService; logs?: LogSink },
  options: PipelineModuleOptions = {},
): PlatformModule<PipelineService> & { executor: PipelineExecutor } {
  const { projects, secrets, auth } = deps;
  const db = ctx.drivers.db.db;
  const log = ctx.log.child({ module: 'pipeline' });
  const stateDir = path.resolve(
    ctx.config.pipeline_workspace_dir ?? path.join(ctx.config.data_dir, 'workspaces'),
  );
  const runner = options.runner ?? createRunner(ctx, path.join(stateDir, 'runs'));
  const executor = new PipelineExecutor({
    db,
    pubsub: ctx.drivers.pubsub,
    objects: ctx.drivers.objects,
    events: ctx.events,
    log,
    runner,
    secrets,
    projects,
    instanceId: ctx.scheduler.instanceId,
    createMasker,
    ...(deps.logs ? { logs: deps.logs } : {}),
    options: {
      concurrency: ctx.config.pipeline_concurrency,
      leaseSeconds: ctx.config.pipeline_lease_seconds,
      stateDir,
      registry: ctx.config.pipeline_registry,
      artifactExpirySeconds: parseDuration(ctx.config.artifact_expiry_default),
      publicUrl: ctx.config.public_url,
    },
    ...(runner.kind === 'kubernetes'
      ? {
          // The init container clones over HTTP: a read-only token of the person who triggered the run
          // (the project owner for schedules), valid for a few hours and revoked when the run ends.
          cloneToken: async (pipeline, project) => {
            const userId = pipeline.triggered_by ?? project.owner_id;
            const user = await db
              .selectFrom('users')
              .select(['id', 'name', 'user_type'])
              .where('id', '=', userId)
              .executeTakeFirst();
            if (!user) return undefined;
            const actor = { id: null, name: `pipeline:${pipeline.id}`, ip: null };
            const owner = { userId: user.id, userName: user.name, userType: user.user_type };
            const created = await auth.createToken(actor, owner, {
              name: `pipeline-${pipeline.id}`,
              scopes: ['project:read'],
              project_id: project.id,
              expires_at: new Date(Date.now() + 6 * 3600_000),
            });
            return {
              token: created.token,
              revoke: () => auth.revokeToken(actor, owner, created.id, false),
            };
          },
        }
      : {}),
  });
  const service = new PipelineService({
    db,
    projects,
    events: ctx.events,
    pubsub: ctx.drivers.pubsub,
    objects: ctx.drivers.objects,
    log,
    onQueued: () => executor.announce(),
  });
  const streams: StreamSet = new Set();
  let unsubscribe: (() => void)[] = [];

  return {
    name: 'pipeline',
    service,
    executor,
    routes: pipelineRoutes(service, {
      db,
      pubsub: ctx.drivers.pubsub,
      objects: ctx.drivers.objects,
      streams,
    }),
    start: async () => {
      unsubscribe = subscribeTriggers(ctx.events, db, service, projects, ctx.config.public_url);
      await executor.start();
      ctx.scheduler.add({
        name: PIPELINE_LOOPS.claim,
        intervalMs: options.claimIntervalMs ?? 1000,
        singleInstance: false,
        run: () => executor.tick(),
      });
      ctx.scheduler.add({
        name: PIPELINE_LOOPS.heartbeat,
        intervalMs: Math.max(1000, Math.floor((ctx.config.pipeline_lease_seconds * 1000) / 3)),
        singleInstance: false,
        run: () => executor.heartbeat(),
      });
      ctx.scheduler.add({
        name: PIPELINE_LOOPS.schedules,
        intervalMs: 15_000,
        run: async () => {
          await service.fireDueSchedules();
        },
      });
      ctx.scheduler.add({
        name: PIPELINE_LOOPS.artifactExpiry,
        intervalMs: 10 * 60_000,
        run: async () => {
          const removed = await service.expireArtifacts();
          if (removed > 0) log.info({ removed }, 'expired artifacts deleted');
        },
      });
    },
    stop: async () => {
      for (const off of unsubscribe) off();
      unsubscribe = [];
      for (const end of [...streams]) end();
      await executor.stop();
    },
  };
}
