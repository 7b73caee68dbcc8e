import type { PipelineStepRow, PipelineStepStatus } from '../store/schema.js';

/**
 * Runs the steps in dependency order, independent ones in parallel: a step starts once every
 * dependency succeeded (or failed with `allow_failure`); a step after a failed (not allowed to
 * fail), skipped or cancelled one never runs. `failsPipeline` tells whether a step's result fails
 * the pipeline. Returns whether one did.
 */
export async function runStepGraph(
  steps: PipelineStepRow[],
  opts: {
    aborted(): boolean;
    runStep(step: PipelineStepRow): Promise<PipelineStepStatus>;
    failsPipeline(step: PipelineStepRow, result: PipelineStepStatus): boolean;
  },
): Promise<boolean> {
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
    if (!opts.aborted()) {
      for (const s of steps) {
        if (status.get(s.name) !== 'pending') continue;
        if (!s.depends_on.every((d) => !byName.has(d) || satisfied(d))) continue;
        status.set(s.name, 'running');
        inFlight.set(
          s.name,
          opts.runStep(s).then((result) => {
            status.set(s.name, result);
            if (opts.failsPipeline(s, result)) failed = true;
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
