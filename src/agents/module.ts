import path from 'node:path';
import type { AuthService } from '../auth/index.js';
import type { LogSink } from '../core/log-sink.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import type { IssuesService } from '../issues/index.js';
import type { ProjectsService } from '../projects/index.js';
import type { RbacService } from '../rbac/index.js';
import { createKubernetesRunner, createLocalRunner, type Runner } from '../runners/index.js';
import type { SecretsService } from '../secrets/index.js';
import { subscribeReviewLoop } from './review-loop.js';
import { agentRoutes } from './routes.js';
import { type AgentRunner, kubernetesAgentRunner, localAgentRunner } from './runner.js';
import { AgentsService } from './service.js';

export const AGENT_REAP_LOOP = 'agents.reap';
export const AGENT_LEASE_LOOP = 'agents.lease';

export interface AgentsModuleOptions {
  /** Replaces the step runner the `executor` setting selects (tests: the kubernetes double). */
  runner?: Runner;
  /** How often a WebSocket watcher's access is checked again (default 10 s). */
  wsRecheckMs?: number;
  /** Lease of a running session, renewed while it runs; an expired one is reaped (default 15 s). */
  leaseSeconds?: number;
}

function createRunner(ctx: ModuleContext, workRoot: string): Runner {
  const log = ctx.log.child({ module: 'agent-runner' });
  if (ctx.config.executor === 'kubernetes') {
    return createKubernetesRunner({
      kubeConfig: ctx.config.kubeconfig,
      namespace: ctx.config.k8s_namespace,
      resources: { cpu: ctx.config.k8s_step_cpu, memory: ctx.config.k8s_step_memory },
      log,
    });
  }
  // Agents must not see the platform's data (database, keys, other repositories): only their workspace.
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
 * Agent sessions: the lifecycle routes, the agent identity, the runner (local sandbox or pod), the
 * transcript (stored, published, streamed over WebSocket and SSE, copied to the log store), the
 * limits, the review loop (issues, `@agent` comments on merge requests) and the reaper.
 */
export function createAgentsModule(
  ctx: ModuleContext,
  deps: {
    auth: AuthService;
    rbac: RbacService;
    projects: ProjectsService;
    secrets: SecretsService;
    issues: IssuesService;
    /** The log store (observe), when composed: agent events go there as service `agent`. */
    logs: LogSink | null;
  },
  options: AgentsModuleOptions = {},
): PlatformModule<AgentsService> {
  const db = ctx.drivers.db.db;
  const log = ctx.log.child({ module: 'agents' });
  const stateDir = path.resolve(
    ctx.config.pipeline_workspace_dir ?? path.join(ctx.config.data_dir, 'workspaces'),
  );
  const stepRunner = options.runner ?? createRunner(ctx, path.join(stateDir, 'agents'));
  const asRoot = process.getuid?.() === 0;
  const runner: AgentRunner =
    stepRunner.kind === 'kubernetes'
      ? kubernetesAgentRunner(stepRunner)
      : localAgentRunner(stepRunner, { sandboxUid: asRoot ? ctx.config.runner_uid : null });
  const leaseSeconds = options.leaseSeconds ?? 15;
  const service = new AgentsService({
    db,
    pubsub: ctx.drivers.pubsub,
    events: ctx.events,
    log,
    auth: deps.auth,
    rbac: deps.rbac,
    projects: deps.projects,
    secrets: deps.secrets,
    logs: deps.logs,
    runner,
    instanceId: ctx.scheduler.instanceId,
    publicUrl: ctx.config.public_url,
    leaseSeconds,
  });
  const streams = new Set<() => void>();
  let unsubscribe: (() => void) | undefined;
  return {
    name: 'agents',
    routes: agentRoutes({
      service,
      db,
      pubsub: ctx.drivers.pubsub,
      issues: deps.issues,
      wsRecheckMs: options.wsRecheckMs ?? 10_000,
      streams,
    }),
    service,
    start: async () => {
      unsubscribe = subscribeReviewLoop(ctx.events, db, service, log);
      ctx.scheduler.add({
        name: AGENT_LEASE_LOOP,
        intervalMs: Math.max(1000, Math.floor((leaseSeconds * 1000) / 3)),
        singleInstance: false,
        run: () => service.renew(),
      });
      ctx.scheduler.add({
        name: AGENT_REAP_LOOP,
        intervalMs: 5_000,
        run: async () => {
          await service.reap();
        },
      });
    },
    settle: () => service.settle(),
    stop: async () => {
      unsubscribe?.();
      for (const end of [...streams]) end();
      await service.stopAll();
    },
  };
}
