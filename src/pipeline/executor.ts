import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { systemActor, writeAudit } from '../core/audit.js';
import type { EventBus } from '../core/events.js';
import type { ProjectRow, ProjectsService } from '../projects/index.js';
import type { RepoSource, Runner, StepRunResult, Workspace } from '../runners/types.js';
import { SecretResolutionError, type SecretsService } from '../secrets/index.js';
import type { Db, Tx } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import type { PubSub } from '../store/pubsub/types.js';
import type { PipelineRow, PipelineStatus, PipelineStepRow, PipelineStepStatus } from '../store/schema.js';
import { type PackedArtifact, packArtifact } from './artifacts.js';
import type { ArtifactDefinition, PipelineDefinition } from './definition-types.js';
import { expandVariables, toFinishedEvent } from './events.js';
import { LogReplayServer, type OutputMasker, StepLogWriter } from './logs.js';
import { StepRowWrites } from './step-writes.js';
import { branchOf, channels, INTERRUPTED_ERROR } from './types.js';

export interface ExecutorOptions {
  /** Pipelines this instance runs at once. */
  concurrency: number;
  leaseSeconds: number;
  /** Running logs and artifact staging (the runner has its own work root). */
  stateDir: string;
  registry: string;
  artifactExpirySeconds: number;
  publicUrl: string;
}

export interface ExecutorDeps {
  db: Db;
  pubsub: PubSub;
  objects: ObjectStore;
  events: EventBus;
  log: Logger;
  runner: Runner;
  secrets: SecretsService;
  projects: ProjectsService;
  instanceId: string;
  options: ExecutorOptions;
  createMasker(secrets: string[]): OutputMasker;
  /** A read token for remote clones (kubernetes), revoked when the run ends; undefined when the runner clones locally. */
  cloneToken?(
    pipeline: PipelineRow,
    project: ProjectRow,
  ): Promise<{ token: string; revoke(): Promise<void> } | undefined>;
}

type AbortReason = 'cancel' | 'shutdown' | 'lost';

interface RunningPipeline {
  id: string;
  abort: AbortController;
  reason: AbortReason | null;
  writers: Map<string, StepLogWriter>;
  done: Promise<void>;
}

interface PendingArtifact {
  name: string;
  stepId: string | null;
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  expiresAt: Date | null;
}

interface Publication {
  stepId: string;
  environment: string;
  imageRef: string | null;
  artifactName: string | null;
}

interface RunContext {
  row: PipelineRow;
  project: ProjectRow;
  workspace: Workspace;
  source: RepoSource;
  running: RunningPipeline;
  logDir: string;
  artifacts: PendingArtifact[];
  publications: Publication[];
  artifactNames: Set<string>;
  /** Step logs being stored; awaited before the pipeline finishes. */
  logUploads: Promise<void>[];
  /** Step-row writes, applied in order off the steps' critical path; drained before the pipeline finishes. */
  stepWrites: StepRowWrites;
}

const PLACEHOLDER = /\$\{\{ secrets\.([A-Za-z_][A-Za-z0-9_]{0,254}) \}\}/g;
const ENVIRONMENT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Claims pending pipelines (FOR UPDATE SKIP LOCKED, bounded per instance), runs each as a DAG of
 * steps on the runner, keeps its lease alive, and finishes it in one transaction (status, steps,
 * artifacts, deployments, audit). Any instance may run any pipeline; recovery fails pipelines
 * whose instance died.
 */
export class PipelineExecutor {
  private readonly running = new Map<string, RunningPipeline>();
  private active = false;
  private stopping = false;
  private recoveredAtStart = false;
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  private readonly replay: LogReplayServer;
  private unsubscribers: (() => Promise<void>)[] = [];

  constructor(private readonly deps: ExecutorDeps) {
    this.replay = new LogReplayServer(deps.pubsub, (stepId) => this.writerOf(stepId), deps.log);
  }

  private get db(): Db {
    return this.deps.db;
  }

  private writerOf(stepId: string): StepLogWriter | undefined {
    for (const r of this.running.values()) {
      const w = r.writers.get(stepId);
      if (w) return w;
    }
    return undefined;
  }

  /** Number of pipelines running on this instance. */
  get load(): number {
    return this.running.size;
  }

  async start(): Promise<void> {
    await this.replay.start();
    this.unsubscribers.push(
      await this.deps.pubsub.subscribe(channels.cancel, (message) => {
        const id = (message as { pipelineId?: string }).pipelineId;
        if (id) this.abort(id, 'cancel');
      }),
      await this.deps.pubsub.subscribe(channels.wake, () => this.kick()),
    );
  }

  /**
   * The claim loop's tick (every instance). The first tick also recovers what a previous process
   * left behind; from then on, `kick` claims at once when work is queued on any instance.
   */
  async tick(): Promise<void> {
    if (this.stopping) return;
    if (!this.recoveredAtStart) {
      await this.recover();
      this.recoveredAtStart = true;
    }
    this.active = true;
    await this.claim();
  }

  /** Claims right away (a pipeline was queued or a slot freed) — only once background work started. */
  kick(): void {
    if (!this.active || this.stopping) return;
    void this.claim().catch((err: unknown) => this.deps.log.error({ err }, 'claiming pipelines failed'));
  }

  /** Tells every instance that work was queued. */
  announce(): void {
    this.kick();
    void this.deps.pubsub.publish(channels.wake, {}).catch(() => {});
  }

  private claim(): Promise<void> {
    if (this.claiming) {
      this.claimAgain = true;
      return this.claiming;
    }
    this.claiming = (async () => {
      try {
        do {
          this.claimAgain = false;
          await this.claimOnce();
        } while (this.claimAgain && !this.stopping);
      } finally {
        this.claiming = null;
      }
    })();
    return this.claiming;
  }

  private async claimOnce(): Promise<void> {
    const capacity = this.deps.options.concurrency - this.running.size;
    if (capacity <= 0 || this.stopping) return;
    const lease = this.deps.options.leaseSeconds;
    // A pipeline of a concurrency group waits while another of its group runs or an older one of it
    // is still pending (so the group's pipelines run one at a time, oldest first).
    const claimed = await sql<PipelineRow>`
      with picked as (
        select p.id from pipelines p
        where p.status = 'pending'
          and (p.concurrency_group is null or not exists (
            select 1 from pipelines q
            where q.project_id = p.project_id and q.concurrency_group = p.concurrency_group and q.id <> p.id
              and (q.status = 'running' or (q.status = 'pending' and (q.created_at, q.id) < (p.created_at, p.id)))
          ))
        order by p.created_at, p.id
        limit ${capacity}
        for update of p skip locked
      )
      update pipelines set status = 'running', lease_holder = ${this.deps.instanceId},
        lease_expires_at = now() + make_interval(secs => ${lease}), started_at = now()
      from picked where pipelines.id = picked.id
      returning pipelines.*`.execute(this.db);
    for (const row of claimed.rows) this.launch(row);
  }

  private launch(row: PipelineRow): void {
    const running: RunningPipeline = {
      id: row.id,
      abort: new AbortController(),
      reason: null,
      writers: new Map(),
      done: Promise.resolve(),
    };
    this.running.set(row.id, running);
    running.done = this.execute(row, running)
      .catch((err: unknown) => this.deps.log.error({ err, pipelineId: row.id }, 'pipeline execution failed'))
      .finally(() => {
        this.running.delete(row.id);
        this.kick();
      });
  }

  private abort(id: string, reason: AbortReason): void {
    const r = this.running.get(id);
    if (!r || r.abort.signal.aborted) return;
    r.reason = reason;
    r.abort.abort();
  }

  /** Renews the leases of this instance's pipelines; stops those cancelled or taken over meanwhile. */
  async heartbeat(): Promise<void> {
    const ids = [...this.running.keys()];
    if (ids.length > 0) {
      const kept = await this.db
        .updateTable('pipelines')
        .set({
          lease_expires_at: sql<Date>`now() + make_interval(secs => ${this.deps.options.leaseSeconds})`,
        })
        .where('id', 'in', ids)
        .where('lease_holder', '=', this.deps.instanceId)
        .where('status', '=', 'running')
        .returning('id')
        .execute();
      const alive = new Set(kept.map((k) => k.id));
      for (const id of ids) {
        if (alive.has(id)) continue;
        const row = await this.db
          .selectFrom('pipelines')
          .select(['status', 'lease_holder'])
          .where('id', '=', id)
          .executeTakeFirst();
        this.abort(
          id,
          row?.status === 'cancelled' && row.lease_holder === this.deps.instanceId ? 'cancel' : 'lost',
        );
      }
    }
    if (this.active) await this.recover();
  }

  /**
   * Fails pipelines whose instance died (lease expired),
   * and finishes the steps of cancelled pipelines whose instance died before it could; then lets the
   * runner kill leftover processes and remove workspaces.
   */
  async recover(): Promise<string[]> {
    const mine = [...this.running.keys()];
    const result = await this.db.transaction().execute(async (trx) => {
      let q = trx
        .selectFrom('pipelines')
        .selectAll()
        .where((eb) =>
          eb.or([
            eb('status', '=', 'running'),
            eb.and([eb('status', '=', 'cancelled'), eb('lease_holder', 'is not', null)]),
          ]),
        );
      q = q.where('lease_expires_at', '<', sql<Date>`now()`);
      if (mine.length > 0) q = q.where('id', 'not in', mine);
      const rows = await q.forUpdate().skipLocked().limit(100).execute();
      const failed: PipelineRow[] = [];
      for (const row of rows) {
        const interrupted = row.status === 'running';
        // The steps the dead instance was running; the ones it never started are closed below.
        await trx
          .updateTable('pipeline_steps')
          .set({
            status: interrupted ? 'failure' : 'cancelled',
            error: interrupted ? INTERRUPTED_ERROR : null,
            finished_at: sql<Date>`now()`,
          })
          .where('pipeline_id', '=', row.id)
          .where('status', '=', 'running')
          .execute();
        const updated = await closePipelineRow(
          trx,
          row,
          interrupted ? 'failure' : 'cancelled',
          interrupted,
          INTERRUPTED_ERROR,
        );
        if (interrupted) failed.push(updated);
      }
      return { ids: rows.map((r) => r.id), failed };
    });
    if (result.ids.length > 0) {
      this.deps.log.warn({ pipelines: result.ids }, 'recovered pipelines left running by a stopped instance');
      try {
        await this.deps.runner.cleanupOrphans(result.ids);
      } catch (err) {
        this.deps.log.error({ err }, 'cleaning up orphaned steps failed');
      }
      for (const row of result.failed) {
        const project = await this.deps.projects.get(row.project_id).catch(() => null);
        if (project) this.deps.events.emit('pipeline.finished', toFinishedEvent(row, project));
      }
    }
    return result.ids;
  }

  // ------------------------------------------------------------------ one pipeline

  private async execute(row: PipelineRow, running: RunningPipeline): Promise<void> {
    const project = await this.deps.projects.get(row.project_id);
    const steps = await this.db
      .selectFrom('pipeline_steps')
      .selectAll()
      .where('pipeline_id', '=', row.id)
      .orderBy('position')
      .execute();
    const definition = row.definition as unknown as PipelineDefinition | null;
    const logDir = path.join(this.deps.options.stateDir, 'logs', row.id);
    await mkdir(logDir, { recursive: true });
    const source: RepoSource = {
      repoDir: this.deps.projects.repoDir(project),
      cloneUrl: `${this.deps.options.publicUrl}/${project.owner_name}/${project.name}.git`,
      sha: row.commit_sha,
    };
    let workspace: Workspace | null = null;
    const ctx: Omit<RunContext, 'workspace'> = {
      row,
      project,
      source,
      running,
      logDir,
      artifacts: [],
      publications: [],
      artifactNames: new Set(),
      logUploads: [],
      stepWrites: new StepRowWrites(this.db, this.deps.log),
    };
    let credential: { revoke(): Promise<void> } | undefined;
    try {
      const clone = await this.deps.cloneToken?.(row, project);
      credential = clone;
      if (clone) source.cloneToken = clone.token;
      try {
        workspace = await this.deps.runner.prepareWorkspace(row.id, source);
      } catch (err) {
        await this.finish({ ...ctx, workspace: null }, 'failure', `workspace: ${(err as Error).message}`);
        return;
      }
      const full: RunContext = { ...ctx, workspace };
      const failed = await this.runDag(full, steps).finally(() => Promise.all(ctx.logUploads));
      if (!running.abort.signal.aborted) await this.collectArtifacts(full, definition?.artifacts ?? []);
      await this.finish(full, failed ? 'failure' : 'success', null);
    } catch (err) {
      // A platform-side problem (database, object store, clone token): the pipeline fails now with
      // the reason, instead of staying `running` until its lease expires.
      this.deps.log.error({ err, pipelineId: row.id }, 'pipeline execution failed');
      await this.finish({ ...ctx, workspace }, 'failure', `platform error: ${(err as Error).message}`);
    } finally {
      await credential
        ?.revoke()
        .catch((err: unknown) => this.deps.log.warn({ err }, 'revoking the clone token failed'));
      await workspace
        ?.dispose()
        .catch((err: unknown) => this.deps.log.warn({ err }, 'disposing a workspace failed'));
      await rm(logDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  /** Runs the steps in dependency order, independent ones in parallel. Returns whether a step failed the pipeline. */
  private async runDag(ctx: RunContext, steps: PipelineStepRow[]): Promise<boolean> {
    const status = new Map<string, PipelineStepStatus>(steps.map((s) => [s.name, s.status]));
    const byName = new Map(steps.map((s) => [s.name, s]));
    const inFlight = new Map<string, Promise<void>>();
    let failed = false;
    const satisfied = (dep: string) => {
      const s = status.get(dep);
      return s === 'success' || (s === 'failure' && byName.get(dep)?.allow_failure === true);
    };
    const blocked = (dep: string) => {
      const s = status.get(dep);
      return (
        s === 'skipped' || s === 'cancelled' || (s === 'failure' && byName.get(dep)?.allow_failure !== true)
      );
    };
    for (;;) {
      // A step after a failed (not allowed to fail), skipped or cancelled one never runs.
      let changed = true;
      while (changed) {
        changed = false;
        for (const s of steps) {
          if (status.get(s.name) === 'pending' && s.depends_on.some((d) => byName.has(d) && blocked(d))) {
            status.set(s.name, 'skipped');
            changed = true;
          }
        }
      }
      if (!ctx.running.abort.signal.aborted) {
        for (const s of steps) {
          if (status.get(s.name) !== 'pending') continue;
          if (!s.depends_on.every((d) => !byName.has(d) || satisfied(d))) continue;
          status.set(s.name, 'running');
          inFlight.set(
            s.name,
            this.runStep(ctx, s).then((result) => {
              status.set(s.name, result);
              if (result === 'failure' && !s.allow_failure) failed = true;
              if (result === 'cancelled' && ctx.running.reason !== 'cancel') failed = true;
              inFlight.delete(s.name);
            }),
          );
        }
      }
      if (inFlight.size === 0) break;
      await Promise.race(inFlight.values());
    }
    return failed;
  }

  private async stepEnvironment(
    ctx: RunContext,
    step: PipelineStepRow,
  ): Promise<{ env: Record<string, string>; secrets: string[] }> {
    const { row, project } = ctx;
    const names = new Set<string>();
    for (const value of Object.values(step.environment ?? {}))
      for (const m of value.matchAll(PLACEHOLDER)) names.add(m[1]!);
    const values = new Map<string, string>();
    const missing: string[] = [];
    for (const name of names) {
      try {
        values.set(
          name,
          await this.deps.secrets.resolve(project.id, name, 'pipeline', { kind: 'pipeline', id: row.id }),
        );
      } catch (err) {
        if (err instanceof SecretResolutionError) missing.push(...err.missing);
        else throw err;
      }
    }
    if (missing.length > 0) throw new SecretResolutionError(missing, 'pipeline');
    const resolved: Record<string, string> = {};
    for (const [key, value] of Object.entries(step.environment ?? {}))
      resolved[key] = value.replace(PLACEHOLDER, (_m, n: string) => values.get(n)!);
    // The platform's facts win over the definition and the api variables.
    const env: Record<string, string> = {
      ...(row.variables ?? {}),
      ...resolved,
      ...this.injected(ctx, step.name),
    };
    return { env, secrets: [...values.values()] };
  }

  private injected(ctx: RunContext, stepName: string): Record<string, string> {
    const { row, project } = ctx;
    return {
      PLATFORM_PROJECT_ID: project.id,
      PLATFORM_PROJECT_NAME: project.name,
      PROJECT: `${project.owner_name}/${project.name}`,
      COMMIT_SHA: row.commit_sha,
      COMMIT_REF: row.git_ref,
      COMMIT_BRANCH: branchOf(row.git_ref) ?? '',
      PIPELINE_ID: row.id,
      STEP_NAME: stepName,
      REGISTRY: this.deps.options.registry,
      CI: 'true',
    };
  }

  private async runStep(ctx: RunContext, step: PipelineStepRow): Promise<PipelineStepStatus> {
    const started = Date.now();
    // Cancelled between the scheduling decision and now: do not start it. (A cancel or a recovery
    // written by another instance reaches this one as an abort; the guarded writes below leave such
    // rows as they are.)
    if (ctx.running.abort.signal.aborted) return 'cancelled';
    ctx.stepWrites.add((trx) =>
      trx
        .updateTable('pipeline_steps')
        .set({ status: 'running', started_at: new Date(started) })
        .where('id', '=', step.id)
        .where('status', '=', 'pending')
        .execute(),
    );

    let env: Record<string, string>;
    let secrets: string[];
    try {
      ({ env, secrets } = await this.stepEnvironment(ctx, step));
    } catch (err) {
      const message =
        err instanceof SecretResolutionError ? err.message : `environment: ${(err as Error).message}`;
      this.recordStep(ctx, step, { status: 'failure', exitCode: null, error: message, started });
      return 'failure';
    }

    const writer = new StepLogWriter(
      step.id,
      path.join(ctx.logDir, `${step.id}.log`),
      this.deps.createMasker(secrets),
      this.deps.pubsub,
      this.deps.log,
    );
    ctx.running.writers.set(step.id, writer);
    let result: StepRunResult;
    try {
      result = await this.deps.runner.runStep({
        runId: `${ctx.row.id}-${step.name}`,
        pipelineId: ctx.row.id,
        stepName: step.name,
        image: step.image,
        commands: step.commands,
        env,
        timeoutSeconds: step.timeout_seconds,
        network: stepNetwork(ctx.row, step.name),
        workspace: ctx.workspace,
        source: ctx.source,
        labels: { 'platform.io/project': ctx.project.id },
        signal: ctx.running.abort.signal,
        onOutput: (chunk) => writer.write(chunk),
      });
    } catch (err) {
      result = {
        outcome: 'failure',
        exitCode: null,
        error: `runner: ${(err as Error).message}`,
        durationMs: 0,
      };
    }

    let status: PipelineStepStatus;
    let error: string | null = result.error ?? null;
    switch (result.outcome) {
      case 'success':
        status = 'success';
        break;
      case 'timeout':
        status = 'failure';
        error ??= `timed out after ${step.timeout_seconds} s`;
        break;
      case 'cancelled':
        status = ctx.running.reason === 'shutdown' ? 'failure' : 'cancelled';
        error = ctx.running.reason === 'shutdown' ? INTERRUPTED_ERROR : (error ?? 'cancelled');
        break;
      default:
        status = 'failure';
        error ??= result.exitCode !== null ? `exited with code ${result.exitCode}` : 'failed';
    }
    if (status === 'success' && step.publish) {
      const problem = await this.preparePublication(ctx, step, env);
      if (problem) {
        status = 'failure';
        error = `publish: ${problem}`;
      }
    }

    const size = writer.finish();
    this.recordStep(ctx, step, { status, exitCode: result.exitCode, error, started });
    // Dependents start now; the log is stored meanwhile (the pipeline ends only once every log is).
    ctx.logUploads.push(this.storeLog(ctx, step, writer, size, status));
    return status;
  }

  /**
   * Stores the finished step's log in the object store, then tells live streams it ended. Until then
   * the running log stays available for replays (a stream may read it in between).
   */
  private async storeLog(
    ctx: RunContext,
    step: PipelineStepRow,
    writer: StepLogWriter,
    size: number,
    status: PipelineStepStatus,
  ): Promise<void> {
    try {
      const key = `logs/pipelines/${ctx.row.id}/${step.name}.log`;
      await this.deps.objects.put(key, createReadStream(writer.file), {
        contentType: 'text/plain; charset=utf-8',
        contentLength: size,
      });
      ctx.stepWrites.add((trx) =>
        trx
          .updateTable('pipeline_steps')
          .set({ log_key: key, log_size: size })
          .where('id', '=', step.id)
          .execute(),
      );
      await ctx.stepWrites.drained();
    } catch (err) {
      this.deps.log.error({ err, stepId: step.id }, 'storing a step log failed');
    } finally {
      ctx.running.writers.delete(step.id);
      await writer.end(status);
    }
  }

  /** Queues the step's final row (dependents start without waiting for it). */
  private recordStep(
    ctx: RunContext,
    step: PipelineStepRow,
    r: {
      status: PipelineStepStatus;
      exitCode: number | null;
      error: string | null;
      started: number;
    },
  ): void {
    const finished = Date.now();
    ctx.stepWrites.add((trx) =>
      trx
        .updateTable('pipeline_steps')
        .set({
          status: r.status,
          exit_code: r.exitCode,
          error: r.error,
          duration_ms: Math.max(0, finished - r.started),
          finished_at: new Date(finished),
        })
        .where('id', '=', step.id)
        .where('status', '=', 'running')
        .execute(),
    );
  }

  /** Checks and stages what a successful `publish` step hands to the deployer; a problem fails the step. */
  private async preparePublication(
    ctx: RunContext,
    step: PipelineStepRow,
    env: Record<string, string>,
  ): Promise<string | null> {
    const spec = step.publish!;
    if (!ENVIRONMENT_NAME.test(spec.environment))
      return `environment "${spec.environment}" must be a DNS label (a-z, 0-9, "-")`;
    if (spec.image) {
      ctx.publications.push({
        stepId: step.id,
        environment: spec.environment,
        imageRef: expandVariables(spec.image, env),
        artifactName: null,
      });
      return null;
    }
    if (!spec.artifact) return 'neither artifact nor image given';
    const name = this.uniqueArtifactName(ctx, `publish-${step.name}`);
    const staged = await this.upload(ctx, name, spec.artifact, step.id, null);
    if (typeof staged === 'string') return staged;
    ctx.publications.push({
      stepId: step.id,
      environment: spec.environment,
      imageRef: null,
      artifactName: name,
    });
    return null;
  }

  private uniqueArtifactName(ctx: RunContext, base: string): string {
    let name = base;
    for (let i = 2; ctx.artifactNames.has(name); i++) name = `${base}-${i}`;
    ctx.artifactNames.add(name);
    return name;
  }

  private async collectArtifacts(ctx: RunContext, defs: ArtifactDefinition[]): Promise<void> {
    for (const def of defs) {
      const expires = def.expires_seconds ?? this.deps.options.artifactExpirySeconds;
      const name = this.uniqueArtifactName(ctx, def.name);
      const staged = await this.upload(ctx, name, def.path, null, new Date(Date.now() + expires * 1000));
      if (typeof staged === 'string')
        this.deps.log.info({ pipelineId: ctx.row.id, artifact: def.name }, staged);
    }
  }

  /** Uploads a workspace file (or a directory as tar.gz); returns a problem text when there is nothing to upload. */
  private async upload(
    ctx: RunContext,
    name: string,
    relPath: string,
    stepId: string | null,
    expiresAt: Date | null,
  ): Promise<PendingArtifact | string> {
    let packed: PackedArtifact | string;
    try {
      packed = await packArtifact(ctx.workspace.dir, relPath, ctx.logDir);
    } catch (err) {
      return `artifact "${relPath}": ${(err as Error).message}`;
    }
    if (typeof packed === 'string') return packed;
    try {
      const key = `artifacts/${ctx.row.id}/${name}`;
      const info = await stat(packed.file);
      await this.deps.objects.put(key, createReadStream(packed.file), {
        contentType: packed.contentType,
        contentLength: info.size,
      });
      const artifact: PendingArtifact = {
        name,
        stepId,
        key,
        size: info.size,
        sha256: packed.sha256,
        contentType: packed.contentType,
        expiresAt,
      };
      ctx.artifacts.push(artifact);
      return artifact;
    } finally {
      await packed.cleanup();
    }
  }

  /** The one transaction that ends a pipeline: status, remaining steps, artifacts, deployments, audit. */
  private async finish(
    ctx: Omit<RunContext, 'workspace'> & { workspace: Workspace | null },
    computed: 'success' | 'failure',
    error: string | null,
  ): Promise<void> {
    const { row, project, running } = ctx;
    // Every step row is written before the pipeline's final state (and the close of unstarted steps).
    await ctx.stepWrites
      .drained()
      .catch((err: unknown) => this.deps.log.error({ err, pipelineId: row.id }, 'step rows not all written'));
    let status: PipelineStatus = computed;
    let finalError = error;
    if (running.reason === 'shutdown') {
      status = 'failure';
      finalError = INTERRUPTED_ERROR;
    } else if (running.reason === 'cancel') status = 'cancelled';
    const me = this.deps.instanceId;
    const outcome = await this.db.transaction().execute(async (trx) => {
      const cur = await trx
        .selectFrom('pipelines')
        .select(['status', 'lease_holder'])
        .where('id', '=', row.id)
        .forUpdate()
        .executeTakeFirst();
      if (!cur || cur.lease_holder !== me) return null; // recovered by another instance meanwhile
      const transitioned = cur.status === 'running';
      const final: PipelineStatus = transitioned ? status : cur.status;
      const artifactIds = new Map<string, string>();
      for (const a of ctx.artifacts) {
        const published = ctx.publications.some((p) => p.artifactName === a.name) && final === 'success';
        const inserted = await trx
          .insertInto('artifacts')
          .values({
            pipeline_id: row.id,
            project_id: row.project_id,
            step_id: a.stepId,
            name: a.name,
            object_key: a.key,
            content_type: a.contentType,
            size_bytes: a.size,
            sha256: a.sha256,
            // A published artifact must outlive any expiry: the deployer may roll it out later.
            expires_at: published
              ? null
              : (a.expiresAt ?? new Date(Date.now() + this.deps.options.artifactExpirySeconds * 1000)),
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        artifactIds.set(a.name, inserted.id);
      }
      const deployments: { id: string; environment: string; current_status: string }[] = [];
      if (transitioned && final === 'success') {
        for (const p of ctx.publications) {
          const artifactId = p.artifactName ? (artifactIds.get(p.artifactName) ?? null) : null;
          const d = await trx
            .insertInto('deployments')
            .values({
              project_id: row.project_id,
              environment: p.environment,
              image_ref: p.imageRef,
              artifact_id: artifactId,
              pipeline_id: row.id,
              commit_sha: row.commit_sha,
              desired_status: 'active',
              deployed_by: row.triggered_by,
              deployed_at: sql<Date>`now()`,
            })
            .onConflict((oc) =>
              oc.columns(['project_id', 'environment']).doUpdateSet((eb) => ({
                image_ref: eb.ref('excluded.image_ref'),
                artifact_id: eb.ref('excluded.artifact_id'),
                pipeline_id: eb.ref('excluded.pipeline_id'),
                commit_sha: eb.ref('excluded.commit_sha'),
                desired_status: 'active',
                generation: eb(eb.ref('deployments.generation'), '+', 1),
                deployed_by: eb.ref('excluded.deployed_by'),
                deployed_at: eb.ref('excluded.deployed_at'),
              })),
            )
            .returning(['id', 'environment', 'current_status'])
            .executeTakeFirstOrThrow();
          deployments.push(d);
        }
      }
      const updated = await closePipelineRow(
        trx,
        row,
        final,
        transitioned,
        finalError,
        deployments.length > 0 ? { deployments: deployments.map((d) => d.environment) } : {},
      );
      return { transitioned, updated, deployments };
    });
    if (!outcome) return;
    if (outcome.transitioned)
      this.deps.events.emit('pipeline.finished', toFinishedEvent(outcome.updated, project));
    for (const d of outcome.deployments) {
      this.deps.events.emit('deployment.changed', {
        projectId: row.project_id,
        deploymentId: d.id,
        environment: d.environment,
        status: d.current_status,
        deployedBy: row.triggered_by,
        ownerId: project.owner_id,
      });
    }
  }

  /** Stops claiming; running pipelines are stopped and end as failed ("interrupted"). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.active = false;
    for (const id of this.running.keys()) this.abort(id, 'shutdown');
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await this.claiming?.catch(() => {});
    for (const off of this.unsubscribers) await off().catch(() => {});
    this.unsubscribers = [];
    await this.replay.stop();
  }
}

/** The step's `network` from the stored definition (rows written before it existed: host). */
function stepNetwork(row: PipelineRow, stepName: string): 'host' | 'none' {
  const definition = row.definition as unknown as PipelineDefinition | null;
  return definition?.steps.find((s) => s.name === stepName)?.network === 'none' ? 'none' : 'host';
}

/**
 * Ends a pipeline row in `trx`: the final status (only when it was still running — `transitioned` —
 * with one `pipeline.finish` audit row), the lease released, and the steps that never started closed
 * (`cancelled` for a cancelled pipeline, else `skipped`).
 */
async function closePipelineRow(
  trx: Tx,
  row: Pick<PipelineRow, 'id' | 'project_id'>,
  final: PipelineStatus,
  transitioned: boolean,
  error: string | null,
  auditDetail: Record<string, unknown> = {},
): Promise<PipelineRow> {
  const updated = await trx
    .updateTable('pipelines')
    .set({
      ...(transitioned ? { status: final, error, finished_at: sql<Date>`now()` } : {}),
      lease_holder: null,
      lease_expires_at: null,
    })
    .where('id', '=', row.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await trx
    .updateTable('pipeline_steps')
    .set({ status: final === 'cancelled' ? 'cancelled' : 'skipped' })
    .where('pipeline_id', '=', row.id)
    .where('status', '=', 'pending')
    .execute();
  if (transitioned) {
    await writeAudit(trx, {
      actor: systemActor,
      action: 'pipeline.finish',
      resourceType: 'pipeline',
      resourceId: row.id,
      projectId: row.project_id,
      detail: { status: final, ...(error ? { error } : {}), ...auditDetail },
    });
  }
  return updated;
}
