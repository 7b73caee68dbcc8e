import path from 'node:path';
import { sharedProcessLauncher } from '../core/launcher.js';
import type { LogSink } from '../core/log-sink.js';
import { CoalescedPass } from '../core/loop.js';
import type { ModuleContext, PlatformModule } from '../core/module.js';
import { OutboundClient } from '../core/outbound.js';
import {
  DEFAULT_SANDBOX_USER,
  findOnPath,
  probeBwrap,
  reachableWorkRoot,
  untraversableAncestor,
} from '../runners/index.js';
import { KubernetesTarget } from './kubernetes-target.js';
import type { ProcessSandbox } from './local-process.js';
import { LocalTarget } from './local-target.js';
import { DeployMrChecks } from './mr-checks.js';
import { OpsReposService } from './ops-repos.js';
import { tearDownPreviews } from './previews.js';
import { Reconciler } from './reconcile.js';
import { deployerRoutes } from './routes.js';
import { DeployerService } from './service.js';

/** The scheduler loops of the deployer. */
export const DEPLOY_LOOPS = {
  reconcile: 'deploy.reconcile',
  opsSync: 'deploy.ops-sync',
  previewTtl: 'deploy.preview-ttl',
} as const;

/** What the deployer needs from the modules above it (app.ts wires them). */
export interface DeployerDeps {
  projects: {
    get(
      id: string,
    ): Promise<{ id: string; name: string; owner_name: string; owner_id: string; repo_path: string }>;
    repoDir(project: { repo_path: string }): string;
    findByName(owner: string, name: string): Promise<{ project: { id: string } } | undefined>;
  };
  /** The value of a global secret for the deployer (ops repo credentials). */
  secret(name: string): Promise<string>;
  /** Where deployed processes' logs go (the observe module); absent → the platform log at debug. */
  logs?: LogSink | undefined;
}

export interface DeployerOptions {
  reconcileIntervalMs: number;
  leaseSeconds: number;
}

/**
 * The deployer: owner of deployments, their history, ops repos and previews; the reconciler loop
 * (every instance, rows leased with SKIP LOCKED), the local target (supervised processes in the
 * step sandbox behind the `/apps/…` reverse proxy) and the kubernetes target (when a kubeconfig is
 * configured).
 */
export function createDeployerModule(
  ctx: ModuleContext,
  deps: DeployerDeps,
  overrides: Partial<DeployerOptions> = {},
): PlatformModule<DeployerService> & { reconciler: Reconciler; local: LocalTarget } {
  const options: DeployerOptions = { reconcileIntervalMs: 2_000, leaseSeconds: 15, ...overrides };
  const db = ctx.drivers.db.db;
  const log = ctx.log.child({ module: 'deployer' });
  const config = ctx.config;
  const asRoot = process.getuid?.() === 0;
  const sandboxUser = asRoot
    ? {
        uid: config.runner_uid ?? DEFAULT_SANDBOX_USER.uid,
        gid: config.runner_uid ?? DEFAULT_SANDBOX_USER.gid,
      }
    : undefined;
  const configuredRoot = path.join(config.data_dir, 'deploy-releases');
  const root =
    sandboxUser && untraversableAncestor(configuredRoot, sandboxUser.uid, sandboxUser.gid)
      ? reachableWorkRoot(configuredRoot)
      : configuredRoot;
  const launcher = sharedProcessLauncher();
  let sandbox: Promise<ProcessSandbox> | undefined;
  const resolveSandbox = (): Promise<ProcessSandbox> => {
    sandbox ??= (async () => {
      const hidden = [config.data_dir];
      const bwrap = config.runner_bwrap === 'never' ? null : findOnPath('bwrap');
      if (bwrap) {
        const problem = await probeBwrap(launcher, bwrap, [process.execPath], sandboxUser);
        if (problem === null) return { bwrap, user: sandboxUser, hidden };
        if (asRoot || config.runner_bwrap === 'required')
          throw new Error(`bubblewrap does not work here: ${problem}`);
        log.warn({ problem }, 'bubblewrap does not work here; deployed processes run unsandboxed');
      } else if (asRoot || config.runner_bwrap === 'required') {
        throw new Error('deployed processes never run unsandboxed as root: install bubblewrap');
      }
      return { bwrap: null, user: undefined, hidden };
    })();
    sandbox.catch(() => {
      sandbox = undefined;
    });
    return sandbox;
  };
  const local = new LocalTarget({
    root,
    objects: ctx.drivers.objects,
    launcher,
    sandbox: resolveSandbox,
    logs: deps.logs,
    log,
  });
  const kubernetes = config.kubeconfig ? new KubernetesTarget(config.kubeconfig) : null;
  const outbound = new OutboundClient({ allow: config.outbound_allow_list });
  const projectIdByName = async (owner: string, name: string) =>
    (await deps.projects.findByName(owner, name))?.project.id ?? null;
  const project = async (id: string) => {
    const p = await deps.projects.get(id);
    return {
      id: p.id,
      name: p.name,
      owner_name: p.owner_name,
      owner_id: p.owner_id,
      repoDir: deps.projects.repoDir(p),
    };
  };
  const ops = new OpsReposService(
    db,
    config.data_dir,
    config.public_url,
    {
      outbound,
      credential: (name) => deps.secret(name),
      projectRepoDir: async (id) => (await project(id)).repoDir,
    },
    projectIdByName,
  );
  const reconciler = new Reconciler({
    db,
    log,
    events: ctx.events,
    instanceId: ctx.scheduler.instanceId,
    instanceAddress: config.instance_address,
    local,
    kubernetes,
    project,
    opsRepo: (id) => ops.forDeploy(id),
    leaseSeconds: options.leaseSeconds,
  });
  const service = new DeployerService(db, { project, opsRepo: (id) => ops.forDeploy(id) }, config.public_url);
  const pass = new CoalescedPass(
    () => reconciler.pass(),
    (err) => log.error({ err }, 'deploy reconcile pass failed'),
  );
  service.onChanged = () => setTimeout(() => pass.kick(), 10).unref();
  ops.onRollout = () => pass.kick();
  service.live = (id) => ({ serving_here: local.isRunning(id), port: local.runningPort(id) });
  const mrChecks = new DeployMrChecks(db, { project }, log);
  service.mergeRequestChecks = (mrId, headSha, viewer) => mrChecks.forMergeRequest(mrId, headSha, viewer);
  let unsubscribe: (() => void) | null = null;

  return {
    name: 'deployer',
    service,
    reconciler,
    local,
    routes: deployerRoutes(service, ops, local, projectIdByName, ctx.scheduler.instanceId),
    start: async () => {
      const offChanged = ctx.events.on('deployment.changed', () => service.onChanged());
      // A merge request that ends takes its preview environments with it.
      const teardown = (e: { mergeRequestId: string }) =>
        tearDownPreviews(db, { mrId: e.mergeRequestId })
          .then((n) => {
            if (n > 0) service.onChanged();
          })
          .catch((err: unknown) => log.error({ err }, 'preview teardown failed'));
      const offMerged = ctx.events.on('mr.merged', teardown);
      const offClosed = ctx.events.on('mr.closed', teardown);
      // The deploy/diff check of a merge request's head (opened, or new commits pushed).
      const offOpened = ctx.events.on('mr.opened', (e) => mrChecks.schedule(e));
      const offUpdated = ctx.events.on('mr.updated', (e) => {
        if (e.reason === 'push') return mrChecks.schedule(e);
      });
      unsubscribe = () => {
        offChanged();
        offMerged();
        offClosed();
        offOpened();
        offUpdated();
      };
      ctx.scheduler.add({
        name: DEPLOY_LOOPS.previewTtl,
        intervalMs: 60_000,
        run: async () => {
          if ((await tearDownPreviews(db, { expired: true })) > 0) service.onChanged();
        },
      });
      ctx.scheduler.add({
        name: DEPLOY_LOOPS.reconcile,
        intervalMs: options.reconcileIntervalMs,
        singleInstance: false,
        run: (signal) => pass.run(signal),
      });
      ctx.scheduler.add({
        name: DEPLOY_LOOPS.opsSync,
        intervalMs: 15_000,
        run: () => ops.syncDue(),
      });
    },
    settle: () => mrChecks.settle(),
    stop: async () => {
      unsubscribe?.();
      await mrChecks.settle();
      await pass.stop();
      await reconciler.stop();
      await local.close();
    },
  };
}

export { DeployerService };
