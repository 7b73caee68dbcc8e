import { CoalescedPass } from '../core/loop.js';
import { recoverExpired, renewLeases } from './lease.js';
import { LogReplayServer, type StepLogWriter } from './logs.js';
import { executePipeline } from './run.js';
import type { AbortReason, ExecutorDeps, RunningPipeline } from './run-context.js';
import { claimPipelines } from './transitions.js';
import { channels } from './types.js';

export type { ExecutorDeps, ExecutorOptions } from './run-context.js';

/**
 * Claims pending pipelines (bounded per instance), runs each as a graph of steps on the runner,
 * keeps its lease alive, and finishes it in one transaction (status, steps, artifacts, deployments,
 * audit). Any instance may run any pipeline; recovery fails pipelines whose instance died.
 */
export class PipelineExecutor {
  private readonly running = new Map<string, RunningPipeline>();
  private recoveredAtStart = false;
  private readonly claims: CoalescedPass;
  private readonly replay: LogReplayServer;
  private unsubscribers: (() => Promise<void>)[] = [];

  constructor(private readonly deps: ExecutorDeps) {
    this.replay = new LogReplayServer(deps.pubsub, (stepId) => this.writerOf(stepId), deps.log);
    this.claims = new CoalescedPass(
      () => this.claimOnce(),
      (err) => deps.log.error({ err }, 'claiming pipelines failed'),
    );
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
    if (this.claims.stopped) return;
    if (!this.recoveredAtStart) {
      await this.recover();
      this.recoveredAtStart = true;
    }
    await this.claims.run();
  }

  /** Claims right away (a pipeline was queued or a slot freed) — only once background work started. */
  kick(): void {
    this.claims.kick();
  }

  /** Tells every instance that work was queued. */
  announce(): void {
    this.kick();
    void this.deps.pubsub.publish(channels.wake, {}).catch(() => {});
  }

  private async claimOnce(): Promise<void> {
    const capacity = this.deps.options.concurrency - this.running.size;
    if (capacity <= 0 || this.claims.stopped) return;
    const claimed = await claimPipelines(this.deps.db, {
      instanceId: this.deps.instanceId,
      leaseSeconds: this.deps.options.leaseSeconds,
      capacity,
    });
    for (const row of claimed) this.launch(row);
  }

  private launch(row: Parameters<typeof executePipeline>[1]): void {
    const running: RunningPipeline = {
      id: row.id,
      abort: new AbortController(),
      reason: null,
      writers: new Map(),
      done: Promise.resolve(),
    };
    this.running.set(row.id, running);
    running.done = executePipeline(this.deps, row, running)
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
    for (const { id, reason } of await renewLeases(this.deps, [...this.running.keys()]))
      this.abort(id, reason);
    if (this.recoveredAtStart && !this.claims.stopped) await this.recover();
  }

  /** Recovers what dead instances left running (see `recoverExpired`); returns the pipeline ids. */
  recover(): Promise<string[]> {
    return recoverExpired(this.deps, [...this.running.keys()]);
  }

  /** Stops claiming; running pipelines are stopped and end as failed ("interrupted"). */
  async stop(): Promise<void> {
    const claiming = this.claims.stop();
    for (const id of this.running.keys()) this.abort(id, 'shutdown');
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await claiming;
    for (const off of this.unsubscribers) await off().catch(() => {});
    this.unsubscribers = [];
    await this.replay.stop();
  }
}
