import type { AgentMessageKind, AgentMessageRole } from '../store/schema.js';

/** One normalised progress event of a session: stored in agent_messages and streamed to watchers. */
export interface ProgressEvent {
  role: AgentMessageRole;
  kind: AgentMessageKind;
  content: string;
  metadata: Record<string, unknown>;
}

/** What the provider reported about the session's consumption so far (cumulative). */
export interface UsageTotals {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  numTurns: number;
}

/** The longest line kept whole; longer ones are cut (and reported) so one line cannot exhaust memory. */
export const MAX_LINE_BYTES = 1024 * 1024;

/**
 * Splits a byte stream into lines: a line split across chunks is joined, a final line without a
 * newline is delivered by `flush`. A line longer than MAX_LINE_BYTES is delivered cut, flagged.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overflowed = false;

  constructor(private readonly onLine: (line: string, cut: boolean) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      this.append(chunk.subarray(start, nl));
      this.emit();
      start = nl + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
  }

  flush(): void {
    if (this.pendingBytes > 0 || this.overflowed) this.emit();
  }

  private append(part: Buffer): void {
    if (this.pendingBytes + part.length > MAX_LINE_BYTES) {
      const room = MAX_LINE_BYTES - this.pendingBytes;
      if (room > 0) this.pending.push(Buffer.from(part.subarray(0, room)));
      this.pendingBytes = MAX_LINE_BYTES;
      this.overflowed = true;
      return;
    }
    // Copied: a retained subarray would pin the whole chunk it came from.
    this.pending.push(Buffer.from(part));
    this.pendingBytes += part.length;
  }

  private emit(): void {
    const line = Buffer.concat(this.pending).toString('utf8').replace(/\r$/, '');
    const cut = this.overflowed;
    this.pending = [];
    this.pendingBytes = 0;
    this.overflowed = false;
    this.onLine(line, cut);
  }
}

/** A short, single-line summary of a tool input for the transcript (the full input stays in metadata). */
export function summarize(value: unknown, max = 200): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value) ?? '';
    } catch {
      text = String(value);
    }
  }
  text = text.replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
