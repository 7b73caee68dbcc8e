/** Following a step pod to its verdict: phases, container states, the log stream. */
import { Writable } from 'node:stream';
import type { CoreV1Api, Log, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  IMAGE_PULL_REASONS,
  LOG_DRAIN_MS,
  MAX_READ_FAILURES,
  START_FAILURE_REASONS,
} from './kubernetes-pod.js';
import type { StepRunRequest, StepRunResult } from './types.js';

interface SuperviseInput {
  api: CoreV1Api;
  logs: Log;
  namespace: string;
  name: string;
  req: StepRunRequest;
  pollIntervalMs: number;
  signal: AbortSignal;
  emit(chunk: Buffer): void;
  log: Logger | undefined;
}

type Verdict = Omit<StepRunResult, 'durationMs'>;

/** Resolves the step's result, or null when `signal` stopped the watch (cancel or the runner's deadline). */
export async function superviseStep(input: SuperviseInput): Promise<Verdict | null> {
  const { api, namespace, name, signal } = input;
  let readFailures = 0;
  const readPod = async (): Promise<V1Pod> => {
    for (;;) {
      try {
        const pod = await api.readNamespacedPod({ name, namespace });
        readFailures = 0;
        return pod;
      } catch (err) {
        if (statusCode(err) === 404) throw new Error(`pod ${name} was deleted`);
        if (++readFailures >= MAX_READ_FAILURES) throw err;
        input.log?.warn({ pod: name, err: describeError(err) }, 'reading step pod failed; retrying');
        await sleep(input.pollIntervalMs, signal);
        if (signal.aborted) throw new StoppedError();
      }
    }
  };

  try {
    // 1. Until the step container has started, or the pod cannot get that far.
    let noted = '';
    for (;;) {
      const pod = await readPod();
      const start = startVerdict(pod, input.req);
      if (start === 'started') break;
      if (start !== 'waiting') {
        if (start.cloneFailed) await emitCloneLog(input);
        return start.verdict;
      }
      const note = pendingNote(pod);
      if (note && note !== noted) {
        noted = note;
        input.emit(Buffer.from(`[runner] ${note}\n`));
      }
      await sleep(input.pollIntervalMs, signal);
      if (signal.aborted) return null;
    }

    // 2. Follow the step container's log until it has ended and the stream has delivered everything.
    await followStepLog(input, readPod);
    if (signal.aborted) return null;

    // 3. The final status.
    for (;;) {
      const verdict = finalVerdict(await readPod(), input.req);
      if (verdict) return verdict;
      await sleep(input.pollIntervalMs, signal);
      if (signal.aborted) return null;
    }
  } catch (err) {
    if (err instanceof StoppedError || signal.aborted) return null;
    throw err;
  }
}

class StoppedError extends Error {}

/**
 * A follow stream can end before the container does (API server or kubelet restarts, long-running
 * connections cut by proxies): it is then opened again from the start and the bytes already delivered
 * are skipped. A stream still open after the container has ended is replaced by a plain read.
 */
async function followStepLog(input: SuperviseInput, readPod: () => Promise<V1Pod>): Promise<void> {
  const { signal } = input;
  let delivered = 0;
  let generation = 0;
  const sinkFor = (mine: number) => {
    let seen = 0;
    return (chunk: Buffer) => {
      if (mine !== generation) return;
      const fresh = seen + chunk.length - delivered;
      seen += chunk.length;
      if (fresh <= 0) return;
      input.emit(fresh === chunk.length ? chunk : chunk.subarray(chunk.length - fresh));
      delivered += fresh;
    };
  };

  for (;;) {
    if (signal.aborted) return;
    generation++;
    const stream = openLog(input, 'step', true, sinkFor(generation));
    let finishedAt: number | null = null;
    let outcome: 'ended' | 'failed' | 'open' = 'open';
    while (outcome === 'open') {
      outcome = await Promise.race([
        stream.done,
        sleep(input.pollIntervalMs, signal).then(() => 'open' as const),
      ]);
      if (signal.aborted) {
        stream.abort();
        return;
      }
      if (outcome !== 'open') break;
      if (finishedAt === null && stepEnded(await readPod())) finishedAt = Date.now();
      if (finishedAt !== null && Date.now() - finishedAt > LOG_DRAIN_MS) {
        stream.abort();
        outcome = 'failed';
      }
    }
    const ended = finishedAt !== null || stepEnded(await readPod());
    if (outcome === 'ended' && ended) return;
    if (ended) {
      // The container is done but the stream did not finish cleanly: one plain read of the whole log.
      generation++;
      const rest = openLog(input, 'step', false, sinkFor(generation));
      const last = await Promise.race([rest.done, sleep(30_000, signal).then(() => 'failed' as const)]);
      if (last !== 'ended') rest.abort();
      return;
    }
    // Still running: the stream broke (or could not be opened yet). Open it again.
    await sleep(input.pollIntervalMs, signal);
  }
}

interface LogStream {
  /** 'ended': the server ended the response; 'failed': the request or connection failed or was aborted. */
  done: Promise<'ended' | 'failed'>;
  abort(): void;
}

function openLog(
  input: SuperviseInput,
  container: string,
  follow: boolean,
  onData: (chunk: Buffer) => void,
): LogStream {
  let controller: AbortController | null = null;
  let aborted = false;
  const done = new Promise<'ended' | 'failed'>((resolve) => {
    let ended = false;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        onData(chunk);
        callback();
      },
    });
    // Log.log pipes the response into the sink; a broken connection errors the response without ending
    // the sink, so the source is watched directly.
    sink.on('pipe', (source) => {
      source.on('end', () => {
        ended = true;
      });
      source.on('error', () => {});
      source.on('close', () => resolve(ended ? 'ended' : 'failed'));
    });
    sink.on('finish', () => resolve('ended'));
    input.logs
      .log(input.namespace, input.name, container, sink, { follow })
      .then((c) => {
        controller = c;
        if (aborted) c.abort();
      })
      .catch(() => resolve('failed'));
  });
  return {
    done,
    abort() {
      aborted = true;
      controller?.abort();
    },
  };
}

/** The clone container's own output, so the log says why the checkout failed. */
async function emitCloneLog(input: SuperviseInput): Promise<void> {
  const chunks: Buffer[] = [];
  const stream = openLog(input, 'clone', false, (chunk) => chunks.push(chunk));
  const result = await Promise.race([stream.done, sleep(10_000, input.signal).then(() => 'failed' as const)]);
  if (result !== 'ended') stream.abort();
  const text = Buffer.concat(chunks);
  if (text.length === 0) return;
  input.emit(Buffer.from('[runner] output of the checkout (clone container):\n'));
  input.emit(text);
  if (text[text.length - 1] !== 0x0a) input.emit(Buffer.from('\n'));
}

function containerStatus(pod: V1Pod, name: string, init = false): V1ContainerStatus | undefined {
  const list = init ? pod.status?.initContainerStatuses : pod.status?.containerStatuses;
  return list?.find((s) => s.name === name);
}

function stepEnded(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return (
    containerStatus(pod, 'step')?.state?.terminated !== undefined ||
    phase === 'Succeeded' ||
    phase === 'Failed'
  );
}

function startVerdict(
  pod: V1Pod,
  req: StepRunRequest,
): 'waiting' | 'started' | { verdict: Verdict; cloneFailed: boolean } {
  const clone = containerStatus(pod, 'clone', true);
  const step = containerStatus(pod, 'step');
  if (step?.state?.running || step?.state?.terminated) return 'started';

  const cloneEnd = clone?.state?.terminated;
  if (cloneEnd && cloneEnd.exitCode !== 0) {
    const why = [cloneEnd.reason, cloneEnd.message?.trim()].filter(Boolean).join(': ');
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `checkout failed: clone container exited with ${cloneEnd.exitCode}${why ? ` (${why})` : ''}`,
      },
      cloneFailed: true,
    };
  }
  const cloneWaiting = clone?.state?.waiting;
  if (cloneWaiting?.reason && IMAGE_PULL_REASONS.has(cloneWaiting.reason)) {
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `checkout failed: image ${clone?.image ?? ''} could not be pulled (${reasonText(cloneWaiting)})`,
      },
      cloneFailed: false,
    };
  }
  const stepWaiting = step?.state?.waiting;
  if (stepWaiting?.reason && IMAGE_PULL_REASONS.has(stepWaiting.reason)) {
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `image ${step?.image ?? req.image ?? ''} could not be pulled (${reasonText(stepWaiting)})`,
      },
      cloneFailed: false,
    };
  }
  if (stepWaiting?.reason && START_FAILURE_REASONS.has(stepWaiting.reason)) {
    return {
      verdict: {
        outcome: 'failure',
        exitCode: null,
        error: `step container could not start (${reasonText(stepWaiting)})`,
      },
      cloneFailed: false,
    };
  }
  const phase = pod.status?.phase;
  if (phase === 'Failed' || phase === 'Succeeded') {
    const verdict = finalVerdict(pod, req);
    if (verdict) return { verdict, cloneFailed: false };
  }
  return 'waiting';
}

function finalVerdict(pod: V1Pod, req: StepRunRequest): Verdict | null {
  const status = pod.status;
  // activeDeadlineSeconds: the kubelet killed the containers; their exit codes only say "killed".
  if (status?.reason === 'DeadlineExceeded') {
    return { outcome: 'timeout', exitCode: null, error: `timed out after ${req.timeoutSeconds}s` };
  }
  const ended = containerStatus(pod, 'step')?.state?.terminated;
  if (ended) {
    if (ended.exitCode === 0) return { outcome: 'success', exitCode: 0 };
    const verdict: Verdict = { outcome: 'failure', exitCode: ended.exitCode };
    if (ended.reason === 'OOMKilled') verdict.error = 'out of memory (OOMKilled)';
    else if (ended.reason && ended.reason !== 'Error' && ended.reason !== 'Completed')
      verdict.error = reasonText(ended);
    return verdict;
  }
  if (status?.phase === 'Failed') {
    return {
      outcome: 'failure',
      exitCode: null,
      error: `pod failed${status.reason ? ` (${reasonText(status)})` : ''}`,
    };
  }
  if (status?.phase === 'Succeeded') return { outcome: 'success', exitCode: null };
  return null;
}

function pendingNote(pod: V1Pod): string | null {
  const unschedulable = pod.status?.conditions?.find(
    (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
  );
  return unschedulable ? `waiting for a node: ${unschedulable.message ?? 'unschedulable'}` : null;
}

function reasonText(state: { reason?: string; message?: string }): string {
  return [state.reason, state.message?.trim()].filter(Boolean).join(': ');
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export function statusCode(err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : null;
}

/** The API server's own message (a Status object in the body) rather than the client's generic text. */
export function describeError(err: unknown): string {
  const code = statusCode(err);
  const body = (err as { body?: unknown } | null)?.body;
  let message: string | undefined;
  if (typeof body === 'string') {
    try {
      message = (JSON.parse(body) as { message?: string }).message;
    } catch {
      message = body.slice(0, 300) || undefined;
    }
  } else if (body && typeof body === 'object') {
    message = (body as { message?: string }).message;
  }
  if (code !== null) return `HTTP ${code}${message ? `: ${message}` : ''}`;
  return err instanceof Error ? err.message : String(err);
}
