import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type AgentsService, createAgentsModule } from './agents/index.js';
import { createAuditModule } from './audit/index.js';
import { type AuthService, createAuthModule } from './auth/index.js';
import type { Config } from './config.js';
import { EventBus } from './core/events.js';
import { RouteRegistry } from './core/http.js';
import { createHttpServer } from './core/http-server.js';
import { loadMasterKey } from './core/keys.js';
import { createLogger } from './core/logger.js';
import { createMetrics, type Metrics } from './core/metrics.js';
import type { ModuleContext, PlatformModule } from './core/module.js';
import { Scheduler } from './core/scheduler.js';
import { createDeployerModule, type DeployerService } from './deployer/index.js';
import { createGitModule, type RepoBrowser } from './git/index.js';
import { createIssuesModule, type IssuesService } from './issues/index.js';
import { createMcpModule } from './mcp/index.js';
import { createMergeRequestsModule, type MergeRequestsService } from './mergerequests/index.js';
import { createNotifyModule, type NotifyService } from './notify/index.js';
import { createObserveModule, type ObserveService, PlatformLogTap } from './observe/index.js';
import { createPipelineModule, type PipelineService } from './pipeline/index.js';
import { createProjectsModule, type ProjectsService } from './projects/index.js';
import { createRbacModule, type RbacService } from './rbac/index.js';
import { createSecretsModule, type SecretsService } from './secrets/index.js';
import type { Drivers } from './store/index.js';
import { createSystemModule } from './system/module.js';
import { createWebModule } from './web/index.js';
import { createWebhooksModule, type WebhooksService } from './webhooks/index.js';

/** Every module's public service, by module: what tests and the CLI reach into, typed. */
export interface PlatformServices {
  rbac: RbacService;
  auth: AuthService;
  projects: ProjectsService;
  git: RepoBrowser;
  mergeRequests: MergeRequestsService;
  secrets: SecretsService;
  notify: NotifyService;
  pipeline: PipelineService;
  deployer: DeployerService;
  webhooks: WebhooksService;
  issues: IssuesService;
  observe: ObserveService;
  agents: AgentsService;
}

export interface Platform {
  config: Config;
  fastify: FastifyInstance;
  registry: RouteRegistry;
  drivers: Drivers;
  log: Logger;
  events: EventBus;
  scheduler: Scheduler;
  metrics: Metrics;
  rbac: RbacService;
  auth: AuthService;
  services: PlatformServices;
  /** Waits until background work started by earlier requests (events, post-push work) is done. */
  settle(): Promise<void>;
  /** Starts background loops (serve does; tests may not). */
  startBackground(): void;
  /** Drains requests, stops loops and subscriptions. Does not close the drivers (the caller owns them). */
  close(): Promise<void>;
}

export interface BuildOptions {
  logger?: Logger;
}

/** Composes the modules in dependency order; every module's shape is `core/module.ts`. */
export async function buildApp(
  config: Config,
  drivers: Drivers,
  options: BuildOptions = {},
): Promise<Platform> {
  // The platform's own log lines are log entries too (service `platform`), once observe exists.
  const logTap = new PlatformLogTap(options.logger ?? createLogger(config));
  const log = logTap.log;
  const metrics = createMetrics();
  const events = new EventBus(log);
  const scheduler = new Scheduler(drivers.db.db, log, metrics);
  const ctx: ModuleContext = {
    config,
    drivers,
    log,
    events,
    scheduler,
    metrics,
    masterKey: loadMasterKey(config),
  };

  const rbac = createRbacModule(ctx);
  const auth = createAuthModule(ctx, { rbac: rbac.service });
  const fastify = await createHttpServer({
    config,
    log,
    metrics,
    authenticate: (credentials, ip) => auth.service.authenticate(credentials, ip),
  });
  const registry = new RouteRegistry(
    fastify,
    { check: (p, perm, project) => rbac.service.check(p, perm, project) },
    config.body_limit_bytes,
    // The /api/projects/:owner/:name/… aliases: resolved here, checked and handled as the id form.
    async (owner, name) => (await projects.service.findByName(owner, name))?.project.id ?? null,
  );
  const identity = { rbac: rbac.service };
  // Early: every producer of log entries (pipeline, deployer, agents) gets its LogSink.
  const observe = createObserveModule(ctx, {
    // OTLP/gRPC callers: the same authentication and access checks as HTTP requests.
    identity: {
      authenticate: (credentials, ip) => auth.service.authenticate(credentials, ip),
      access: { check: (p, perm, project) => rbac.service.check(p, perm, project) },
    },
  });
  logTap.attach(observe.service.logs);
  const projects = createProjectsModule(ctx, identity);
  const secrets = createSecretsModule(ctx);
  const git = createGitModule(ctx, { projects: projects.service, ...identity });
  const mergeRequests = createMergeRequestsModule(ctx, {
    projects: projects.service,
    ...identity,
    // Lazy: the pipeline module is composed below (its push subscription must stay after this one's).
    checks: {
      latestForCommit: (projectId, sha) => pipeline.service.latestForCommit(projectId, sha),
      // The deployer's deploy/diff check (composed below, like the pipeline).
      forMergeRequest: (mrId, headSha, viewer) => deployer.service.mergeRequestChecks(mrId, headSha, viewer),
    },
  });
  const notify = createNotifyModule(ctx);
  const deployer = createDeployerModule(ctx, {
    projects: projects.service,
    secret: (name) => secrets.service.resolve(null, name, 'deploy', { kind: 'ops_repo', id: name }),
    logs: observe.service.logs,
  });
  const pipeline = createPipelineModule(ctx, {
    projects: projects.service,
    secrets: secrets.service,
    auth: auth.service,
    logs: observe.service.logs,
  });
  const webhooks = createWebhooksModule(ctx, identity);
  const issues = createIssuesModule(ctx, identity);
  const agents = createAgentsModule(ctx, {
    ...identity,
    auth: auth.service,
    projects: projects.service,
    secrets: secrets.service,
    issues: issues.service,
    // Agent events also go to the log store as service `agent`.
    logs: observe.service.logs,
  });
  const modules: PlatformModule[] = [
    rbac,
    auth,
    // Stops after the modules that write log entries through it (modules stop in reverse).
    observe,
    createSystemModule(ctx, { registry }),
    createAuditModule(ctx),
    projects,
    git,
    mergeRequests,
    secrets,
    notify,
    deployer,
    pipeline,
    webhooks,
    issues,
    agents,
    // Its tools are derived from the routes registered (read at start, when all are).
    createMcpModule(ctx, { fastify, routes: () => registry.routes }),
    // Last: its catch-all GET answers the UI for paths no other module serves.
    createWebModule(ctx),
  ];
  const services: PlatformServices = {
    rbac: rbac.service,
    auth: auth.service,
    projects: projects.service,
    git: git.service,
    mergeRequests: mergeRequests.service,
    secrets: secrets.service,
    notify: notify.service,
    pipeline: pipeline.service,
    deployer: deployer.service,
    webhooks: webhooks.service,
    issues: issues.service,
    observe: observe.service,
    agents: agents.service,
  };

  registry.register(modules.flatMap((m) => m.routes));
  for (const m of modules) await m.start?.();
  await fastify.ready();

  let closed = false;
  return {
    config,
    fastify,
    registry,
    drivers,
    log,
    events,
    scheduler,
    metrics,
    rbac: rbac.service,
    auth: auth.service,
    services,
    settle: async () => {
      for (const m of modules) await m.settle?.();
      await events.drain();
    },
    startBackground: () => scheduler.start(),
    close: async () => {
      if (closed) return;
      closed = true;
      // In-flight requests may finish (idle keep-alive connections close at once), but not forever:
      // a client that stopped mid-upload or a stream nobody ends must not hold the shutdown.
      const force = setTimeout(() => fastify.server.closeAllConnections(), CLOSE_DRAIN_MS);
      try {
        await fastify.close();
      } finally {
        clearTimeout(force);
      }
      await scheduler.stop();
      for (const m of [...modules].reverse()) await m.stop?.();
      await events.drain();
    },
  };
}

/** How long a shutdown waits for in-flight requests before their connections are closed. */
const CLOSE_DRAIN_MS = 10_000;
