import { Transform, type TransformCallback } from 'node:stream';
import type { PushReceivedEvent } from './events.js';

/** The longest a push's answer waits for what the subscribers started (pipelines…). */
export const PUSH_REPLY_WAIT_MS = 2000;

/**
 * What the modules that react to a push tell the pusher, printed by git as `remote: …` lines at
 * the end of the push (e.g. `Pipeline #12: <url>`). A `push.received` subscriber wraps its work in
 * `during(event, work)`, called before its first `await` (the event bus starts every subscriber
 * synchronously, so by the time `emit` returns the git module knows whom to wait for); the lines
 * `work` resolves to are printed if it finishes within PUSH_REPLY_WAIT_MS of the refs moving.
 * The work runs to its end either way: only the message is dropped when it is late.
 */
export class PushReplies {
  private readonly pending = new WeakMap<PushReceivedEvent, Promise<string[]>[]>();

  during(event: PushReceivedEvent, work: () => Promise<string[] | undefined>): Promise<void> {
    const run = work();
    const lines = run.then(
      (l) => l ?? [],
      () => [],
    );
    const list = this.pending.get(event);
    if (list) list.push(lines);
    else this.pending.set(event, [lines]);
    return run.then(() => undefined);
  }

  /** The lines for these events' pushes that are ready within `timeoutMs`, in subscription order. */
  async collect(events: PushReceivedEvent[], timeoutMs = PUSH_REPLY_WAIT_MS): Promise<string[]> {
    const all = events.flatMap((e) => this.pending.get(e) ?? []);
    if (all.length === 0) return [];
    const ready: (string[] | undefined)[] = all.map(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(
        all.map((p, i) =>
          p.then((l) => {
            ready[i] = l;
          }),
        ),
      ),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return ready.flatMap((l) => l ?? []);
  }
}

/**
 * The one collector of the process: pushes are told apart by their event objects, so platforms
 * sharing a process (tests) cannot see each other's lines, and a subscriber needs no handle from
 * the git module to report (`import { pushReplies } from '../git/index.js'`).
 */
export const pushReplies = new PushReplies();

const FLUSH = Buffer.from('0000');
const PROGRESS_BAND = 2;

/** One side-band packet on the progress channel: git prints its text as `remote: <text>`. */
function progressPacket(line: string): Buffer {
  const data = Buffer.from(`${line.replace(/[\r\n]+/g, ' ')}\n`);
  const head = Buffer.from((data.length + 5).toString(16).padStart(4, '0'));
  return Buffer.concat([head, Buffer.from([PROGRESS_BAND]), data]);
}

/**
 * Passes git receive-pack's answer through, holding back its last four bytes: with side-band, the
 * answer ends with a flush packet after the report (and the hooks' output), and the platform's own
 * progress lines (`lines()`, awaited once git is done) go just before it. An answer without
 * side-band (the client did not ask for it) passes unchanged: there is no channel to speak on.
 */
export function withRemoteLines(lines: () => Promise<string[]>): Transform {
  let tail: Buffer = Buffer.alloc(0);
  let sideband: boolean | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const all = tail.length ? Buffer.concat([tail, chunk]) : chunk;
      // pkt-line: 4 hex digits of length, then with side-band the band byte (1, 2 or 3).
      if (sideband === undefined && all.length >= 5) sideband = all[4]! >= 1 && all[4]! <= 3;
      const keep = Math.min(4, all.length);
      tail = all.subarray(all.length - keep);
      done(null, all.subarray(0, all.length - keep));
    },
    flush(done: TransformCallback) {
      if (!sideband || !tail.equals(FLUSH)) {
        done(null, tail);
        return;
      }
      lines().then(
        (l) => done(null, Buffer.concat([...l.map(progressPacket), FLUSH])),
        () => done(null, FLUSH),
      );
    },
  });
}
