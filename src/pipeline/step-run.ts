import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { StepRunResult } from '../runners/types.js';
import { SecretResolutionError } from '../secrets/index.js';
import type { PipelineStepRow, PipelineStepStatus } from '../store/schema.js';
import { StepLogWriter } from './logs.js';
import type { ExecutorDeps, RunContext } from './run-context.js';
import { preparePublication } from './staging.js';
import { stepEnvironment, stepNetwork } from './step-env.js';
import { StepLogEntries } from './step-log-entries.js';
import { finishStep, startStep } from './transitions.js';
import { INTERRUPTED_ERROR } from './types.js';

type FinalStepStatus = 'success' | 'failure' | 'cancelled';

/** Runs one step on the runner: its row, environment, live log, publication; returns its final status. */
export async function runStep(
  deps: ExecutorDeps,
  ctx: RunContext,
  step: PipelineStepRow,
): Promise<FinalStepStatus> {
  const started = Date.now();
  // Cancelled between the scheduling decision and now: do not start it. (A cancel or a recovery
  // written by another instance reaches this one as an abort; the guarded transitions leave such
  // rows as they are.)
  if (ctx.running.abort.signal.aborted) return 'cancelled';
  ctx.stepWrites.add((trx) => startStep(trx, step.id, new Date(started)));

  let env: Record<string, string>;
  let secrets: string[];
  try {
    ({ env, secrets } = await stepEnvironment(deps, ctx, step));
  } catch (err) {
    const message =
      err instanceof SecretResolutionError ? err.message : `environment: ${(err as Error).message}`;
    recordStep(ctx, step, { status: 'failure', exitCode: null, error: message, started });
    return 'failure';
  }

  const entries = deps.logs
    ? new StepLogEntries(deps.logs, deps.log, {
        projectId: ctx.project.id,
        attributes: { 'pipeline.id': ctx.row.id, 'step.id': step.id, 'step.name': step.name },
      })
    : undefined;
  const writer = new StepLogWriter(
    step.id,
    path.join(ctx.logDir, `${step.id}.log`),
    deps.createMasker(secrets),
    deps.pubsub,
    deps.log,
    entries && ((text) => entries.push(text)),
  );
  ctx.running.writers.set(step.id, writer);
  let result: StepRunResult;
  try {
    result = await deps.runner.runStep({
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

  let status: FinalStepStatus;
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
    const problem = await preparePublication(deps, ctx, step, env);
    if (problem) {
      status = 'failure';
      error = `publish: ${problem}`;
    }
  }

  const size = writer.finish();
  entries?.end();
  recordStep(ctx, step, { status, exitCode: result.exitCode, error, started });
  // Dependents start now; the log is stored meanwhile (the pipeline ends only once every log is).
  ctx.logUploads.push(storeLog(deps, ctx, step, writer, size, status));
  return status;
}

/**
 * Stores the finished step's log in the object store, then tells live streams it ended. Until then
 * the running log stays available for replays (a stream may read it in between).
 */
async function storeLog(
  deps: ExecutorDeps,
  ctx: RunContext,
  step: PipelineStepRow,
  writer: StepLogWriter,
  size: number,
  status: PipelineStepStatus,
): Promise<void> {
  try {
    const key = `logs/pipelines/${ctx.row.id}/${step.name}.log`;
    await deps.objects.put(key, createReadStream(writer.file), {
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
    deps.log.error({ err, stepId: step.id }, 'storing a step log failed');
  } finally {
    ctx.running.writers.delete(step.id);
    await writer.end(status);
  }
}

/** Queues the step's final row (dependents start without waiting for it). */
function recordStep(
  ctx: RunContext,
  step: PipelineStepRow,
  r: { status: FinalStepStatus; exitCode: number | null; error: string | null; started: number },
): void {
  const finished = Date.now();
  ctx.stepWrites.add((trx) =>
    finishStep(trx, step.id, {
      status: r.status,
      exitCode: r.exitCode,
      error: r.error,
      durationMs: Math.max(0, finished - r.started),
      finishedAt: new Date(finished),
    }),
  );
}
