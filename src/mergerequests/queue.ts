/**
 * Merges into one target branch, and state changes of the merge requests into it, run one after
 * the other on this instance (other instances are kept honest by the compare-and-swap of the merge
 * and the guarded status transitions).
 */
export class BranchQueue {
  /** Tail of the chain of work per project+target branch. */
  private readonly chains = new Map<string, Promise<unknown>>();

  /** Runs `work` after the previous work for the same branch on this instance finished. */
  run<T>(projectId: string, branch: string, work: () => Promise<T>): Promise<T> {
    const key = `${projectId}\0${branch}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.catch(() => undefined);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return run;
  }
}
