/**
 * Masks secret values in a byte stream (step logs) before it is stored or streamed.
 *
 * Works on bytes rather than strings so a chunk boundary inside a multibyte UTF-8 character cannot
 * make a secret unrecognisable, and so the masker never re-encodes (and thereby alters) the output.
 */
export interface Masker {
  /** Takes the next chunk; returns what can be released now (a suffix that may begin a secret is held). */
  push(chunk: Buffer): Buffer;
  /** Releases whatever is still held (end of stream). */
  flush(): Buffer;
}

const MASK = Buffer.from('***');

/** Lines of a multi-line secret shorter than this are not masked on their own (a lone `}` would mask every brace). */
const MIN_LINE_LENGTH = 4;

/**
 * Every non-empty secret value is masked, however short: a short secret that leaks is still a leak,
 * and the pipeline author chose it. Each line of a multi-line value (a PEM key, JSON) is also masked on
 * its own when it has at least 4 bytes, because tools often print such values line by line.
 *
 * Every byte covered by any occurrence of any secret is hidden, and each maximal run of covered bytes
 * becomes one `***`: overlapping values (`abcd` and `cdef` in `abcdef`) leave nothing of either behind,
 * which replacing one value at a time (longest first) would not guarantee. The output does not depend
 * on how the input was split into chunks.
 */
export function createMasker(secrets: string[]): Masker {
  const needles = secretNeedles(secrets);
  if (needles.length === 0) {
    return { push: (chunk) => chunk, flush: () => Buffer.alloc(0) };
  }
  const maxLen = Math.max(...needles.map((n) => n.length));

  let held: Buffer = Buffer.alloc(0);
  /** Leading bytes of `held` already known to be covered by a match that started before it. */
  let heldCovered = 0;
  /** The last byte released was masked: a covered run continuing into the next release adds no second `***`. */
  let lastReleasedCovered = false;

  function release(data: Buffer, final: boolean): Buffer {
    const end = data.length;
    const intervals: Array<[number, number]> = heldCovered > 0 ? [[0, heldCovered]] : [];
    for (const needle of needles) {
      for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
        intervals.push([at, at + needle.length]);
      }
    }
    const merged = mergeIntervals(intervals);

    // Bytes from `cut` on might still become part of a match once more data arrives: hold them.
    const cut = final ? end : firstPossibleMatchStart(data, needles, maxLen);

    if (cut === 0) {
      // Nothing can be released yet; any covered prefix stays described by heldCovered.
      held = data === held ? held : Buffer.from(data);
      return Buffer.alloc(0);
    }
    const parts: Buffer[] = [];
    let pos = 0;
    let covered = lastReleasedCovered;
    let carry = 0;
    // `merged` is sorted and its runs neither overlap nor touch, so each run after a gap is a new `***`.
    for (const [start, stop] of merged) {
      if (start >= cut) break;
      if (start > pos) {
        parts.push(data.subarray(pos, start));
        covered = false;
      }
      if (!covered) parts.push(MASK);
      covered = true;
      pos = Math.min(stop, cut);
      if (stop > cut) carry = stop - cut;
    }
    if (pos < cut) {
      parts.push(data.subarray(pos, cut));
      covered = false;
    }
    lastReleasedCovered = covered;
    heldCovered = carry;
    held = Buffer.from(data.subarray(cut));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  return {
    push(chunk) {
      if (chunk.length === 0) return Buffer.alloc(0);
      return release(held.length > 0 ? Buffer.concat([held, chunk]) : chunk, false);
    },
    flush() {
      if (held.length === 0) return Buffer.alloc(0);
      const out = release(held, true);
      heldCovered = 0;
      return out;
    },
  };
}

function secretNeedles(secrets: string[]): Buffer[] {
  const values = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    values.add(secret);
    if (/[\r\n]/.test(secret)) {
      for (const line of secret.split(/\r?\n|\r/)) {
        if (Buffer.byteLength(line) >= MIN_LINE_LENGTH) values.add(line);
        const trimmed = line.trim();
        if (Buffer.byteLength(trimmed) >= MIN_LINE_LENGTH) values.add(trimmed);
      }
    }
  }
  return [...values].map((v) => Buffer.from(v, 'utf8'));
}

function mergeIntervals(intervals: Array<[number, number]>): Array<[number, number]> {
  intervals.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [start, stop] of intervals) {
    const last = merged[merged.length - 1];
    // Adjacent runs merge too: contiguous covered bytes are one `***` wherever the chunks were split.
    if (last && start <= last[1]) last[1] = Math.max(last[1], stop);
    else merged.push([start, stop]);
  }
  return merged;
}

/** The first offset whose remaining bytes are a proper prefix of some needle (data.length when none). */
function firstPossibleMatchStart(data: Buffer, needles: Buffer[], maxLen: number): number {
  const end = data.length;
  for (let at = Math.max(0, end - maxLen + 1); at < end; at++) {
    const rest = end - at;
    for (const needle of needles) {
      if (needle.length > rest && data.compare(needle, 0, rest, at, end) === 0) return at;
    }
  }
  return end;
}
