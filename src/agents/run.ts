import type { Logger } from 'pino';
import type { LogSink } from '../core/log-sink.js';
import type { Db } from '../store/db.js';
import type { PubSub } from '../store/pubsub/types.js';
import type { AgentMessageRow, AgentStopReason } from '../store/schema.js';
import { LineSplitter, type ProgressEvent, type UsageTotals } from './progress.js';
import type { AgentProvider } from './providers.js';
import { appendMessages, recordUsage } from './queries.js';
import type { AgentRun } from './runner.js';

/** Limits per session (absent = none); the daily budget is what the project has left today. */
export interface SessionLimits {
  max_cost_usd?: number | undefined;
  max_tokens?: number | undefined;
  max_turns?: number | undefined;
  max_wall_seconds?: number | undefined;
}

/** The channel a session's stored events are published on (each message: an array of events). */
export const sessionChannel = (id: string) => `session:${id}`;

/** A stored event as streamed: the message row in its API shape. */
export interface StreamedMessage {
  seq: number;
  role: string;
  kind: string;
  content: string;
  metadata: Record<string, unknown>;
  created_at: string;
}

export function streamedMessage(row: AgentMessageRow): StreamedMessage {
  return {
    seq: row.seq,
    role: row.role,
    kind: row.kind,
    content: row.content,
    metadata: row.metadata as Record<string, unknown>,
    created_at: new Date(row.created_at).toISOString(),
  };
}

/**
 * Writes a session's events in order: stored (sequence numbers), published on `session:<id>` (one
 * message per batch: an array of events), copied to the log store as service `agent`. Events that
 * arrive while a batch is being written go together in the next one (one transaction, one publish):
 * a fast agent does not queue one transaction per line behind a busy database.
 */
export class EventWriter {
  private pending: ProgressEvent[] = [];
  private waiters: Array<() => void> = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly deps: { db: Db; pubsub: PubSub; logs: LogSink | null; log: Logger },
    private readonly session: { id: string; projectId: string; userId: string },
  ) {}

  /** Resolves once these events are stored and published. */
  write(events: ProgressEvent[]): Promise<void> {
    if (events.length === 0) return this.drain();
    this.pending.push(...events);
    const stored = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.flushing ??= this.flush();
    return stored;
  }

  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        const waiters = this.waiters.splice(0);
        try {
          await this.store(batch);
        } catch (err) {
          this.deps.log.error({ err, sessionId: this.session.id }, 'storing session events failed');
        }
        for (const w of waiters) w();
      }
    } finally {
      this.flushing = null;
    }
  }

  private async store(events: ProgressEvent[]): Promise<void> {
    const rows = await appendMessages(this.deps.db, this.session.id, events);
    for (const chunk of publishChunks(rows.map(streamedMessage))) {
      await this.deps.pubsub.publish(sessionChannel(this.session.id), chunk).catch((err: unknown) => {
        this.deps.log.warn({ err, sessionId: this.session.id }, 'publishing session events failed');
      });
    }
    this.deps.logs
      ?.write(
        rows.map((r) => ({
          time: new Date(r.created_at),
          level: r.kind === 'error' ? 'error' : 'info',
          service: 'agent',
          body: r.content,
          projectId: this.session.projectId,
          sessionId: this.session.id,
          userId: this.session.userId,
          attributes: { 'agent.seq': r.seq, 'agent.kind': r.kind, 'agent.role': r.role },
        })),
      )
      .catch((err: unknown) =>
        this.deps.log.warn({ err, sessionId: this.session.id }, 'agent log write failed'),
      );
  }
}

/** What one pub/sub message may carry (PostgreSQL NOTIFY stops at 8000 bytes). */
const PUBLISH_BYTES = 6000;

/**
 * Batches cut to the pub/sub size; an event too large for a message travels as a stub
 * `{seq, stub: true}` that watchers read from the store instead.
 */
export function publishChunks(
  messages: StreamedMessage[],
): Array<Array<StreamedMessage | { seq: number; stub: true }>> {
  const chunks: Array<Array<StreamedMessage | { seq: number; stub: true }>> = [];
  let current: Array<StreamedMessage | { seq: number; stub: true }> = [];
  let bytes = 2;
  for (const m of messages) {
    let item: StreamedMessage | { seq: number; stub: true } = m;
    let size = Buffer.byteLength(JSON.stringify(m)) + 1;
    if (size > PUBLISH_BYTES) {
      item = { seq: m.seq, stub: true };
      size = 30;
    }
    if (bytes + size > PUBLISH_BYTES && current.length > 0) {
      chunks.push(current);
      current = [];
      bytes = 2;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Which limit the totals passed, if any. */
export function limitReached(
  limits: SessionLimits,
  u: UsageTotals,
  budgetLeft: number | null,
): AgentStopReason | null {
  if (limits.max_cost_usd !== undefined && u.costUsd >= limits.max_cost_usd) return 'cost_limit';
  if (budgetLeft !== null && u.costUsd >= budgetLeft) return 'daily_budget';
  if (limits.max_tokens !== undefined && u.inputTokens + u.outputTokens >= limits.max_tokens)
    return 'token_limit';
  if (limits.max_turns !== undefined && u.numTurns >= limits.max_turns) return 'turn_limit';
  return null;
}

/**
 * The running side of one session on this instance: stdout → lines → the provider's events →
 * EventWriter; usage checked against the limits after each event batch (a limit reached stops the
 * session through `onLimit`); user messages written to stdin in the provider's format.
 */
export class LiveSession {
  readonly abort = new AbortController();
  run: AgentRun | null = null;
  private readonly splitter: LineSplitter;
  private readonly parser;
  private lastUsage: string | null = null;
  private closeTimer: NodeJS.Timeout | undefined;
  private echoSkipped = false;

  constructor(
    readonly id: string,
    private readonly provider: AgentProvider,
    readonly writer: EventWriter,
    private readonly db: Db,
    private readonly limits: SessionLimits,
    private readonly budgetLeft: number | null,
    private readonly onLimit: (reason: AgentStopReason, detail: string) => void,
    /** After the agent ends a turn (a `completed` event), how long its input stays open for more. */
    private readonly idleSeconds: number,
  ) {
    this.parser = provider.createParser();
    this.splitter = new LineSplitter((line, cut) => this.line(line, cut));
  }

  output(chunk: Buffer): void {
    this.splitter.push(chunk);
  }

  endOfOutput(): void {
    this.splitter.flush();
  }

  async message(text: string): Promise<boolean> {
    if (!this.run) return false;
    clearTimeout(this.closeTimer);
    return this.run.write(this.provider.encodeUserMessage(text));
  }

  private line(line: string, cut: boolean): void {
    // The step runner's echo of the start command (`$ …`, once) is not the agent's output.
    if (!this.echoSkipped && line.startsWith('$ ')) {
      this.echoSkipped = true;
      return;
    }
    // The runner's own first line (sandbox or not) is a system note, not the agent's output.
    if (line.startsWith('[runner] ')) {
      void this.writer.write([{ role: 'system', kind: 'text', content: line, metadata: { runner: true } }]);
      return;
    }
    const events = cut
      ? [
          {
            role: 'system',
            kind: 'error',
            content: 'an output line was too long and was cut',
            metadata: {},
          } as ProgressEvent,
        ]
      : this.safeParse(line);
    void this.writer.write(events);
    if (this.checkUsage()) return;
    if (events.some((e) => e.kind === 'completed')) {
      // A streaming agent waits for more input after each turn: with nobody writing, end its input
      // so it exits (completed) instead of holding the session open.
      clearTimeout(this.closeTimer);
      this.closeTimer = setTimeout(() => void this.run?.closeInput(), this.idleSeconds * 1000);
      this.closeTimer.unref();
    }
  }

  /** Records new totals and stops the session when one reached a limit (true then). */
  private checkUsage(): boolean {
    const usage = this.parser.usage();
    if (!usage) return false;
    const key = JSON.stringify(usage);
    if (key === this.lastUsage) return false;
    this.lastUsage = key;
    void recordUsage(this.db, this.id, usage).catch(() => {});
    const reason = limitReached(this.limits, usage, this.budgetLeft);
    if (!reason) return false;
    this.onLimit(
      reason,
      `${reason.replace('_', ' ')} reached (cost $${usage.costUsd.toFixed(4)}, ${usage.inputTokens + usage.outputTokens} tokens, ${usage.numTurns} turns)`,
    );
    return true;
  }

  private safeParse(line: string): ProgressEvent[] {
    try {
      return this.parser.parseLine(line);
    } catch (err) {
      return [
        { role: 'system', kind: 'error', content: `parser failed: ${(err as Error).message}`, metadata: {} },
      ];
    }
  }
}
