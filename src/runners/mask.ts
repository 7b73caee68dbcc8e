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
 * Encoded forms (base64, hex, URL encoding) shorter than this are not masked. The value itself always
 * is, but the base64 of a 2-byte secret at an odd alignment is 1–2 characters, and hiding every `YW`
 * or `61` would wreck unrelated output (hashes, ids, numbers) while revealing nothing a reader could not
 * already guess.
 */
const MIN_DERIVED_LENGTH = 6;

/**
 * Every non-empty secret value is masked, however short: a short secret that leaks is still a leak,
 * and the pipeline author chose it. Each line of a multi-line value (a PEM key, JSON) is also masked on
 * its own when it has at least 4 bytes, because tools often print such values line by line. The
 * base64, hex and URL-encoded forms of each value (see encodedForms) are masked too when they have at
 * least 6 characters.
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
  const matcher = new NeedleMatcher(needles);

  let held: Buffer = Buffer.alloc(0);
  /** Leading bytes of `held` already known to be covered by a match that started before it. */
  let heldCovered = 0;
  /** The last byte released was masked: a covered run continuing into the next release adds no second `***`. */
  let lastReleasedCovered = false;

  function release(data: Buffer, final: boolean): Buffer {
    const end = data.length;
    const { merged, openFrom } = matcher.scan(data, heldCovered);

    // Bytes from `cut` on might still become part of a match once more data arrives: hold them.
    const cut = final ? end : openFrom;

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
  const derived = new Set<string>();
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
    // A value read from a file often ends with a newline that the step's own `printf %s` drops.
    const trimmed = secret.trim();
    for (const value of new Set([secret, trimmed])) {
      if (value.length === 0) continue;
      for (const form of encodedForms(Buffer.from(value, 'utf8'))) {
        if (form.length >= MIN_DERIVED_LENGTH) derived.add(form);
      }
    }
  }
  for (const form of derived) values.add(form);
  return [...values].map((v) => Buffer.from(v, 'utf8'));
}

/**
 * The forms of `value` that tools commonly print: base64 (standard and URL-safe alphabets, with and
 * without padding, at the three alignments the value can have inside a longer stream), hex (lower and
 * upper case) and URL encoding (encodeURIComponent and form encoding, upper- and lower-case escapes),
 * plus the lines of the wrapped base64 and `xxd -p` output of the value alone.
 */
function encodedForms(value: Buffer): string[] {
  const forms: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    // The value starting `shift` bytes into a base64 stream: characters that hold bits of the bytes
    // before it differ with those bytes, so only the ones made of the value's own bits are kept. When
    // the value ends the stream, its last characters (and the padding) depend on it alone too.
    const encoded = Buffer.concat([Buffer.alloc(shift), value]).toString('base64');
    const first = Math.ceil((8 * shift) / 6);
    const inner = encoded.slice(first, Math.floor((8 * (shift + value.length)) / 6));
    const tail = encoded.slice(first);
    for (const form of [inner, tail, tail.replace(/=+$/, '')]) {
      forms.push(form, form.replace(/\+/g, '-').replace(/\//g, '_'));
    }
    if (shift === 0) {
      // `base64` (76 columns) and `openssl base64` (64) wrap their output; a value that starts the
      // stream is then printed in these pieces.
      for (const width of BASE64_WRAP_WIDTHS) forms.push(...wrapped(inner, width), ...wrapped(tail, width));
    }
  }
  const hex = value.toString('hex');
  forms.push(hex, hex.toUpperCase(), ...wrapped(hex, XXD_WRAP_WIDTH));
  const text = value.toString('utf8');
  // A string with a lone surrogate does not round-trip through UTF-8, and encodeURIComponent throws on it.
  if (Buffer.from(text, 'utf8').equals(value)) {
    const component = encodeURIComponent(text);
    const form = new URLSearchParams({ v: text }).toString().slice(2);
    for (const encodedText of [component, component.replace(/%20/g, '+'), form]) {
      forms.push(
        encodedText,
        encodedText.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
      );
    }
  }
  return [...new Set(forms)];
}

const BASE64_WRAP_WIDTHS = [76, 64];
const XXD_WRAP_WIDTH = 60;

/** The lines of `text` wrapped at `width` columns, when it is longer than one line. */
function wrapped(text: string, width: number): string[] {
  if (text.length <= width) return [];
  const lines: string[] = [];
  for (let at = 0; at < text.length; at += width) lines.push(text.slice(at, at + width));
  return lines;
}

/**
 * Aho–Corasick over bytes: one pass over the data finds every occurrence of every needle, whatever
 * their number. A secret brings some dozens of encoded forms (hundreds of wrapped-line pieces for a
 * PEM key), and searching for each with indexOf made masking cost grow with that count on every chunk.
 */
/** 1024 nodes × 256 transitions × 4 bytes = 1 MiB per masker at most. */
const DENSE_NODES = 1024;

class NeedleMatcher {
  /** `node * 256 + byte` → child node; node 0 is the root; nodes are numbered in breadth-first order. */
  private readonly edges = new Map<number, number>();
  /** Complete transitions (failure links folded in) for the first DENSE_NODES nodes, the shallowest. */
  private readonly dense: Int32Array;
  private readonly denseCount: number;
  private readonly fail: Int32Array;
  private readonly depth: Int32Array;
  /** Length of the longest needle that ends at this node (itself or through its failure chain), 0 when none. */
  private readonly longest: Int32Array;
  private readonly hasChildren: Uint8Array;

  constructor(needles: Buffer[]) {
    // A plain trie first, then renumbered breadth-first so that shallow nodes (where a scan spends most
    // of its time) get low numbers and a dense transition table.
    const trieEdges = new Map<number, number>();
    const firstChild: number[] = [-1];
    const nextSibling: number[] = [-1];
    const byteOfTrie: number[] = [0];
    const terminalOf: number[] = [0];
    for (const needle of needles) {
      let node = 0;
      for (const byte of needle) {
        let child = trieEdges.get(node * 256 + byte);
        if (child === undefined) {
          child = firstChild.length;
          trieEdges.set(node * 256 + byte, child);
          firstChild.push(-1);
          nextSibling.push(firstChild[node]!);
          firstChild[node] = child;
          byteOfTrie.push(byte);
          terminalOf.push(0);
        }
        node = child;
      }
      terminalOf[node] = needle.length;
    }
    const count = firstChild.length;
    const order: number[] = [0];
    const parent = new Int32Array(count);
    const byteOf = new Uint8Array(count);
    this.depth = new Int32Array(count);
    this.hasChildren = new Uint8Array(count);
    // Breadth-first numbering gives the children of a node consecutive numbers.
    const childrenFrom = new Int32Array(count);
    const childrenTo = new Int32Array(count);
    for (let i = 0; i < order.length; i++) {
      childrenFrom[i] = order.length;
      for (let child = firstChild[order[i]!]!; child !== -1; child = nextSibling[child]!) {
        const id = order.length;
        order.push(child);
        parent[id] = i;
        byteOf[id] = byteOfTrie[child]!;
        this.depth[id] = this.depth[i]! + 1;
        this.hasChildren[i] = 1;
        this.edges.set(i * 256 + byteOf[id]!, id);
      }
      childrenTo[i] = order.length;
    }
    this.fail = new Int32Array(count);
    this.longest = new Int32Array(count);
    this.denseCount = Math.min(count, DENSE_NODES);
    this.dense = new Int32Array(this.denseCount * 256);
    for (let id = 0; id < count; id++) {
      if (id > 0) {
        this.fail[id] = this.depth[id] === 1 ? 0 : this.next(this.fail[parent[id]!]!, byteOf[id]!);
        this.longest[id] = terminalOf[order[id]!]! || this.longest[this.fail[id]!]!;
      }
      if (id < this.denseCount) {
        // A node's row is its failure node's row (shallower, already filled) with its own edges on top.
        if (id > 0) this.dense.copyWithin(id * 256, this.fail[id]! * 256, this.fail[id]! * 256 + 256);
        for (let child = childrenFrom[id]!; child < childrenTo[id]!; child++) {
          this.dense[id * 256 + byteOf[child]!] = child;
        }
      }
    }
  }

  private next(state: number, byte: number): number {
    for (;;) {
      if (state < this.denseCount) return this.dense[state * 256 + byte]!;
      const child = this.edges.get(state * 256 + byte);
      if (child !== undefined) return child;
      state = this.fail[state]!;
    }
  }

  /**
   * The covered runs of `data` (sorted, neither overlapping nor touching; the first `coveredPrefix`
   * bytes count as covered), and the first offset from which the rest of the data is a proper prefix
   * of some needle — the bytes that must wait for more input (data.length when none).
   */
  scan(data: Buffer, coveredPrefix: number): { merged: Array<[number, number]>; openFrom: number } {
    const merged: Array<[number, number]> = coveredPrefix > 0 ? [[0, coveredPrefix]] : [];
    let state = 0;
    for (let i = 0; i < data.length; i++) {
      state = this.next(state, data[i]!);
      const length = this.longest[state]!;
      if (length === 0) continue;
      // Matches arrive by end offset; a longer one may start before runs already recorded and swallow them.
      let start = i + 1 - length;
      const stop = i + 1;
      while (merged.length > 0 && merged[merged.length - 1]![1] >= start) {
        start = Math.min(start, merged.pop()![0]);
      }
      merged.push([start, stop]);
    }
    let open = state;
    while (open !== 0 && this.hasChildren[open] === 0) open = this.fail[open]!;
    return { merged, openFrom: data.length - this.depth[open]! };
  }
}
