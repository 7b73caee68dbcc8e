/**
 * The background pass every queue worker needs (notification and webhook delivery, the pipeline
 * claim): "run a pass now, or once more after the current one". A pass never runs twice at once; a
 * request for a pass while one runs makes that pass look again when it ends, so work committed
 * during a pass is never missed and bursts of requests cost one extra pass, not one each.
 *
 * `run` is the scheduler's loop body (the poll that catches anything a request did not announce);
 * `kick` asks for a pass soon and is ignored until the scheduler ran once (background work started)
 * and after `stop`.
 */
export class CoalescedPass {
  private running: Promise<void> | null = null;
  private again = false;
  private active = false;
  private stopping = false;

  constructor(
    private readonly pass: (signal?: AbortSignal) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** True once `stop` was called: a pass checks it between batches. */
  get stopped(): boolean {
    return this.stopping;
  }

  /** The scheduler loop body: a pass now (joined with one in progress); kicks count from here on. */
  run(signal?: AbortSignal): Promise<void> {
    this.active = true;
    return this.request(signal);
  }

  /** Asks for a pass soon (after a commit); coalesces with a pass in progress. Errors are reported, not thrown. */
  kick(): void {
    if (!this.active || this.stopping) return;
    this.request().catch(this.onError);
  }

  /** No new pass starts; waits for the one in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running?.catch(() => {});
  }

  private request(signal?: AbortSignal): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.pass(signal);
        } while (this.again && !this.stopping && !signal?.aborted);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }
}
