import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import type { Metrics } from './metrics.js';

export interface Loop {
  name: string;
  intervalMs: number;
  /**
   * true (default): only one instance runs the loop at a time, coordinated by a lease row in
   * `scheduler_leases` (works on PGlite and across PostgreSQL instances). false: every instance runs it
   * (loops that claim rows with FOR UPDATE SKIP LOCKED).
   */
  singleInstance?: boolean;
  run(signal: AbortSignal): Promise<void>;
}

/** Starts background loops, runs each without overlap, logs and counts failures, stops them on shutdown. */
export class Scheduler {
  readonly instanceId = randomUUID();
  private readonly loops: Loop[] = [];
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private started = false;
  /** Set once this instance took a lease (also through runNow without start): stop() must release it. */
  private tookLease = false;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {}

  add(loop: Loop): void {
    if (this.loops.some((l) => l.name === loop.name)) throw new Error(`loop ${loop.name} already added`);
    this.loops.push(loop);
    if (this.started) this.schedule(loop, 0);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const loop of this.loops) this.schedule(loop, Math.min(loop.intervalMs, 1000));
  }

  /** Runs one loop now (tests, CLI), honouring its lease. Returns whether it ran. */
  async runNow(name: string): Promise<boolean> {
    const loop = this.loops.find((l) => l.name === name);
    if (!loop) throw new Error(`no loop named ${name}`);
    return this.tick(loop);
  }

  private schedule(loop: Loop, delayMs: number): void {
    if (this.abort.signal.aborted) return;
    const timer = setTimeout(() => {
      const run = this.tick(loop).then(() => undefined);
      this.running.add(run);
      void run.finally(() => {
        this.running.delete(run);
        this.schedule(loop, loop.intervalMs);
      });
    }, delayMs);
    timer.unref();
    this.timers.set(loop.name, timer);
  }

  private async tick(loop: Loop): Promise<boolean> {
    if (this.abort.signal.aborted) return false;
    try {
      if (loop.singleInstance !== false && !(await this.acquireLease(loop))) {
        this.metrics?.loopRuns.inc({ loop: loop.name, outcome: 'skipped' });
        return false;
      }
      await loop.run(this.abort.signal);
      this.metrics?.loopRuns.inc({ loop: loop.name, outcome: 'success' });
      return true;
    } catch (err) {
      this.metrics?.loopRuns.inc({ loop: loop.name, outcome: 'error' });
      if (!this.abort.signal.aborted) this.log.error({ err, loop: loop.name }, 'background loop failed');
      return false;
    }
  }

  private async acquireLease(loop: Loop): Promise<boolean> {
    const ttlSeconds = Math.max(30, Math.ceil((loop.intervalMs * 3) / 1000));
    const result = await sql<{ holder: string }>`
      insert into scheduler_leases (name, holder, expires_at)
      values (${loop.name}, ${this.instanceId}, now() + make_interval(secs => ${ttlSeconds}))
      on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
      where scheduler_leases.holder = excluded.holder or scheduler_leases.expires_at < now()
      returning holder`.execute(this.db);
    if (result.rows.length !== 1) return false;
    this.tookLease = true;
    return true;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
    if (this.tookLease) {
      await this.db
        .deleteFrom('scheduler_leases')
        .where('holder', '=', this.instanceId)
        .execute()
        .catch(() => {});
    }
  }
}
