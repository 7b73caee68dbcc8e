import type { FastifyReply, FastifyRequest } from 'fastify';
import { notFound } from '../core/errors.js';
import { type EventStream, openEventStream } from '../core/sse.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import type { PubSub } from '../store/pubsub/types.js';
import type { PipelineStepRow } from '../store/schema.js';
import { completeUtf8Length, requestReplay } from './logs.js';
import { channels, FINISHED_STEP, type StepLogMessage } from './types.js';

/** Open SSE streams, so shutdown can end them (an open stream would hold the server's close). */
export type StreamSet = Set<() => void>;

export interface LogStreamDeps {
  db: Db;
  pubsub: PubSub;
  objects: ObjectStore;
  streams: StreamSet;
  /** How often an open stream re-reads the step row (catches ends it did not hear about). */
  pollMs?: number;
  heartbeatMs?: number;
}

const PIECE_BYTES = 64 * 1024;
/** A finished step's log is stored right after it ends; past this, a missing log is not coming. */
const LOG_STORE_GRACE_MS = 10_000;

/** Finished and nothing more to wait for: the log is stored, or there never was one. */
function settled(step: PipelineStepRow): boolean {
  if (!FINISHED_STEP.includes(step.status)) return false;
  if (step.log_key !== null || step.started_at === null) return true;
  return step.finished_at !== null && Date.now() - new Date(step.finished_at).getTime() > LOG_STORE_GRACE_MS;
}

/** Yields the stored log from `offset` in pieces that end on character boundaries. */
async function* storedPieces(
  objects: ObjectStore,
  key: string,
  offset: number,
): AsyncGenerator<{ offset: number; data: Buffer }> {
  const object = await objects.get(key);
  if (!object) return;
  let position = 0;
  let held: Buffer = Buffer.alloc(0);
  let heldAt = offset;
  for await (const raw of object.body as AsyncIterable<Buffer>) {
    let chunk = raw;
    if (position + chunk.length <= offset) {
      position += chunk.length;
      continue;
    }
    if (position < offset) chunk = chunk.subarray(offset - position);
    position += raw.length;
    held = held.length > 0 ? Buffer.concat([held, chunk]) : chunk;
    while (held.length >= PIECE_BYTES) {
      const cut = completeUtf8Length(held.subarray(0, PIECE_BYTES)) || PIECE_BYTES;
      yield { offset: heldAt, data: held.subarray(0, cut) };
      heldAt += cut;
      held = held.subarray(cut);
    }
  }
  if (held.length > 0) yield { offset: heldAt, data: held };
}

async function loadStep(
  db: Db,
  projectId: string,
  pipelineId: string,
  stepId: string,
): Promise<PipelineStepRow> {
  const step = await db
    .selectFrom('pipeline_steps as s')
    .innerJoin('pipelines as p', 'p.id', 's.pipeline_id')
    .selectAll('s')
    .where('s.id', '=', stepId)
    .where('s.pipeline_id', '=', pipelineId)
    .where('p.project_id', '=', projectId)
    .executeTakeFirst();
  if (!step) throw notFound('step');
  return step;
}

/**
 * `GET …/steps/:sid/logs`. Plain: the log from `?offset=` as text/plain (stored log once the step
 * finished, the running log from the executing instance while it runs) with `x-next-offset` and
 * `x-log-complete`. With `Accept: text/event-stream`: SSE `{offset, data}` events — backlog, then live
 * output from pub/sub (so any instance can serve it) — and `event: end` when the step finishes.
 */
export async function serveStepLog(
  deps: LogStreamDeps,
  ids: { projectId: string; pipelineId: string; stepId: string },
  offset: number,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const step = await loadStep(deps.db, ids.projectId, ids.pipelineId, ids.stepId);
  if ((req.headers.accept ?? '').includes('text/event-stream')) {
    // Event ids are byte offsets: a reconnecting EventSource resumes where it stopped, not at ?offset=.
    const lastEventId = req.headers['last-event-id'];
    const resumeAt =
      typeof lastEventId === 'string' && /^\d{1,15}$/.test(lastEventId) ? Number(lastEventId) : null;
    return streamSse(deps, ids, step, resumeAt ?? offset, req, reply);
  }

  reply.header('cache-control', 'no-store').type('text/plain; charset=utf-8');
  if (step.log_key) {
    const size = Number(step.log_size ?? 0);
    const pieces: Buffer[] = [];
    for await (const p of storedPieces(deps.objects, step.log_key, offset)) pieces.push(p.data);
    return reply
      .header('x-next-offset', String(Math.max(offset, size)))
      .header('x-log-complete', 'true')
      .send(Buffer.concat(pieces));
  }
  // Running, or finished a moment ago with its log not stored yet: the executing instance has it.
  if (step.started_at !== null) {
    const replay = await requestReplay(deps.pubsub, step.id, offset);
    if (replay || step.status === 'running') {
      return reply
        .header('x-next-offset', String(replay?.end ?? offset))
        .header('x-log-complete', 'false')
        .send(replay?.data ?? '');
    }
  }
  return reply
    .header('x-next-offset', String(offset))
    .header('x-log-complete', String(FINISHED_STEP.includes(step.status)))
    .send('');
}

async function streamSse(
  deps: LogStreamDeps,
  ids: { projectId: string; pipelineId: string; stepId: string },
  initial: PipelineStepRow,
  offset: number,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  let stream: EventStream | undefined;
  let sent = offset;
  let ended = false;
  let backlogDone = false;
  const queue: StepLogMessage[] = [];
  let work: Promise<void> = Promise.resolve();
  const write = (chunk: string) => stream?.write(chunk);
  const end = () => stream?.end();
  const sendData = (at: number, data: Buffer | string) => {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (at + buf.length <= sent) return;
    const part = at < sent ? buf.subarray(sent - at) : buf;
    const from = Math.max(at, sent);
    sent = from + part.length;
    write(`id: ${sent}\ndata: ${JSON.stringify({ offset: from, data: part.toString('utf8') })}\n\n`);
  };
  /** Sends whatever of the stored log this stream has not sent yet, then `end`. */
  const finishFromStore = async (status: string) => {
    if (ended) return;
    ended = true;
    const step = await loadStep(deps.db, ids.projectId, ids.pipelineId, ids.stepId).catch(() => null);
    if (step?.log_key)
      for await (const p of storedPieces(deps.objects, step.log_key, sent)) sendData(p.offset, p.data);
    write(`event: end\ndata: ${JSON.stringify({ offset: sent, status: step?.status ?? status })}\n\n`);
    end();
  };
  const handle = (m: StepLogMessage) => {
    if (ended) return;
    if (m.type === 'chunk') sendData(m.offset, m.data);
    else work = work.then(() => finishFromStore(m.status));
  };

  // Subscribed before anything is read: output produced after this point is never missed.
  const unsubscribe = await deps.pubsub.subscribe(channels.stepLog(initial.id), (message) => {
    const m = message as StepLogMessage;
    if (!backlogDone) queue.push(m);
    else handle(m);
  });

  stream = openEventStream(req, reply, {
    heartbeatMs: deps.heartbeatMs ?? 15_000,
    streams: deps.streams,
    tickMs: deps.pollMs ?? 2000,
    onTick: () => {
      work = work.then(async () => {
        if (ended || !backlogDone) return;
        const step = await loadStep(deps.db, ids.projectId, ids.pipelineId, ids.stepId).catch(() => null);
        // The end message can be missed (the executing instance died, the step was skipped).
        if (step && settled(step)) await finishFromStore(step.status);
      });
    },
    onEnd: () => {
      ended = true;
      void unsubscribe().catch(() => {});
    },
  });
  if (stream.ended) return reply;

  work = work.then(async () => {
    const step = await loadStep(deps.db, ids.projectId, ids.pipelineId, ids.stepId);
    if (settled(step)) {
      backlogDone = true;
      await finishFromStore(step.status);
      return;
    }
    if (step.started_at !== null) {
      const from = sent;
      const replay = await requestReplay(deps.pubsub, step.id, from);
      if (replay) sendData(from, replay.data);
    }
    backlogDone = true;
    for (const m of queue.splice(0)) handle(m);
  });
  work = work.catch(() => end());
  return reply;
}
