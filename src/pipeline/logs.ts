import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';
import type { PubSub } from '../store/pubsub/types.js';
import { channels, type PipelineStepStatus, type StepLogMessage } from './types.js';

/** The part of a buffer that ends on a UTF-8 character boundary (published text never splits a character). */
export function completeUtf8Length(buf: Buffer): number {
  // Look back at most 3 bytes for the start of a multi-byte sequence.
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const byte = buf[buf.length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead byte
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? buf.length - back : buf.length;
  }
  return buf.length;
}

/** Masks secret values; provided by the runners module (createMasker). */
export interface OutputMasker {
  push(chunk: Buffer): Buffer;
  flush(): Buffer;
}

/**
 * The running log of one step on the executing instance: masked output appended to a local file
 * (the byte offsets are offsets in that file) and published chunk by chunk on the step's channel.
 * What is stored, published and replayed is only ever the masked text.
 */
export class StepLogWriter {
  private fd: number | null;
  private written = 0;
  private tail: Buffer = Buffer.alloc(0);
  private publishing: Promise<void> = Promise.resolve();
  /** The chunk message queued but not yet being published, which later output is appended to. */
  private unsent: Extract<StepLogMessage, { type: 'chunk' }> | null = null;

  constructor(
    readonly stepId: string,
    readonly file: string,
    private readonly masker: OutputMasker,
    private readonly pubsub: PubSub,
    private readonly log: Logger,
    /** Sees the masked output as written (the step's log entries in the observability store). */
    private readonly onMasked?: (text: string) => void,
  ) {
    this.fd = openSync(file, 'w', 0o600);
  }

  /** Bytes in the file so far (only whole characters: the published stream's end offset). */
  get size(): number {
    return this.written;
  }

  write(chunk: Buffer): void {
    this.append(this.masker.push(chunk), false);
  }

  private append(masked: Buffer, final: boolean): void {
    if (this.fd === null) return;
    const all = this.tail.length > 0 ? Buffer.concat([this.tail, masked]) : masked;
    const cut = final ? all.length : completeUtf8Length(all);
    this.tail = all.subarray(cut);
    const out = all.subarray(0, cut);
    if (out.length === 0) return;
    writeSync(this.fd, out);
    const offset = this.written;
    this.written += out.length;
    const text = out.toString('utf8');
    this.publish({ type: 'chunk', offset, data: text });
    this.onMasked?.(text);
  }

  private publish(message: StepLogMessage): void {
    // Output that arrives while a publish is in flight joins the next message instead of queueing one
    // message per chunk (each publish is a round trip to Valkey or PostgreSQL).
    if (message.type === 'chunk' && this.unsent) {
      this.unsent.data += message.data;
      return;
    }
    const next = message.type === 'chunk' ? { ...message } : message;
    if (next.type === 'chunk') this.unsent = next;
    // Chained: subscribers see chunks in order, and `end` after the last one.
    this.publishing = this.publishing
      .then(() => {
        if (this.unsent === next) this.unsent = null;
        return this.pubsub.publish(channels.stepLog(this.stepId), next);
      })
      .catch((err: unknown) => this.log.warn({ err, stepId: this.stepId }, 'publishing step output failed'));
  }

  /** Flushes the masker and closes the file; returns the final size. */
  finish(): number {
    this.append(this.masker.flush(), true);
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    return this.written;
  }

  /** Announces the end once the log is stored and the step row updated. */
  async end(status: PipelineStepStatus): Promise<void> {
    this.publish({ type: 'end', offset: this.written, status });
    await this.publishing;
  }

  /** Bytes [from, size) of the running log (replays for streams that connect mid-step). */
  read(from: number, max: number): Buffer {
    const end = Math.min(this.written, from + max);
    if (from >= end) return Buffer.alloc(0);
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(end - from);
      const n = readSync(fd, buf, 0, buf.length, from);
      return buf.subarray(0, n);
    } finally {
      closeSync(fd);
    }
  }
}

interface ReplayRequest {
  requestId: string;
  stepId: string;
  from: number;
}
interface ReplayAnswer {
  offset: number;
  data: string;
  /** Offset the backlog reaches; present on the last piece. */
  end?: number;
}

const REPLAY_PIECE_BYTES = 256 * 1024;
const REPLAY_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Serves the backlog of steps running on this instance to streams on any instance: a stream
 * publishes a request, the executing instance answers on a per-request channel.
 */
export class LogReplayServer {
  private unsubscribe: (() => Promise<void>) | null = null;

  constructor(
    private readonly pubsub: PubSub,
    private readonly writerOf: (stepId: string) => StepLogWriter | undefined,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.pubsub.subscribe(channels.logReplay, (message) => {
      const m = message as ReplayRequest;
      const writer = this.writerOf(m.stepId);
      if (!writer) return;
      void this.answer(writer, m).catch((err: unknown) =>
        this.log.warn({ err, stepId: m.stepId }, 'answering a log replay failed'),
      );
    });
  }

  private async answer(writer: StepLogWriter, m: ReplayRequest): Promise<void> {
    const channel = channels.logReplayAnswer(m.requestId);
    const stop = Math.min(writer.size, Math.max(0, m.from) + REPLAY_MAX_BYTES);
    let offset = Math.max(0, m.from);
    do {
      const buf = writer.read(offset, Math.min(REPLAY_PIECE_BYTES, stop - offset));
      const next = offset + buf.length;
      const last = next >= stop || buf.length === 0;
      const answer: ReplayAnswer = { offset, data: buf.toString('utf8'), ...(last ? { end: next } : {}) };
      await this.pubsub.publish(channel, answer);
      offset = next;
      if (last) break;
    } while (offset < stop);
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.().catch(() => {});
    this.unsubscribe = null;
  }
}

/**
 * Asks whichever instance runs the step for its log from `from`; null when nobody answers in time
 * (the step is not running anywhere any more).
 */
export async function requestReplay(
  pubsub: PubSub,
  stepId: string,
  from: number,
  timeoutMs = 1500,
): Promise<{ data: string; end: number } | null> {
  const requestId = randomUUID();
  const pieces: string[] = [];
  let resolveDone: (v: { data: string; end: number } | null) => void = () => {};
  const done = new Promise<{ data: string; end: number } | null>((r) => {
    resolveDone = r;
  });
  const unsubscribe = await pubsub.subscribe(channels.logReplayAnswer(requestId), (message) => {
    const a = message as ReplayAnswer;
    pieces.push(a.data);
    if (a.end !== undefined) resolveDone({ data: pieces.join(''), end: a.end });
  });
  const timer = setTimeout(() => resolveDone(null), timeoutMs);
  try {
    await pubsub.publish(channels.logReplay, { requestId, stepId, from } satisfies ReplayRequest);
    return await done;
  } finally {
    clearTimeout(timer);
    await unsubscribe().catch(() => {});
  }
}
