import type { Position } from './ast.js';
import { QueryError } from './errors.js';

export type TokenKind = 'ident' | 'string' | 'number' | 'duration' | 'punct' | 'eof';

export interface Token {
  kind: TokenKind;
  /** The identifier, the punctuation, the string's decoded value, or the number/duration as written. */
  text: string;
  at: Position;
  /** number: its value; duration: its length in seconds. */
  value?: number;
}

/** Longest first, so `=~` wins over `=`. */
const PUNCTUATION = ['=~', '!~', '!=', '==', '>=', '<=', '(', ')', '{', '}', '[', ']', ',', '=', '>', '<'];
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const MAX_QUERY_LENGTH = 4000;
const ESCAPES: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', n: '\n', t: '\t', r: '\r' };

const isIdentStart = (c: string) => /[A-Za-z_]/.test(c);
const isIdentPart = (c: string) => /[A-Za-z0-9_.:]/.test(c);
const isDigit = (c: string) => c >= '0' && c <= '9';

/** Splits the source into tokens, each with its line and column; the last token is `eof`. */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let offset = 0;
  let line = 1;
  let lineStart = 0;
  const here = (): Position => ({ line, column: offset - lineStart + 1, offset });
  if (source.length > MAX_QUERY_LENGTH)
    throw new QueryError(`query longer than ${MAX_QUERY_LENGTH} characters`, {
      line: 1,
      column: MAX_QUERY_LENGTH + 1,
      offset: MAX_QUERY_LENGTH,
    });

  while (offset < source.length) {
    const c = source.charAt(offset);
    if (c === '\n') {
      offset++;
      line++;
      lineStart = offset;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      offset++;
      continue;
    }
    if (c === '#') {
      // A comment runs to the end of the line.
      while (offset < source.length && source.charAt(offset) !== '\n') offset++;
      continue;
    }
    const at = here();
    // PostgreSQL text cannot hold NUL; refused here rather than failing as a database error.
    if (c === '\u0000') throw new QueryError('NUL character not allowed', at);
    if (c === '"' || c === "'") {
      tokens.push(readString(c, at));
      continue;
    }
    if (isDigit(c) || (c === '.' && isDigit(source.charAt(offset + 1)))) {
      tokens.push(readNumber(at));
      continue;
    }
    if (isIdentStart(c)) {
      let end = offset + 1;
      while (end < source.length && isIdentPart(source.charAt(end))) end++;
      tokens.push({ kind: 'ident', text: source.slice(offset, end), at });
      offset = end;
      continue;
    }
    const punct = PUNCTUATION.find((p) => source.startsWith(p, offset));
    if (punct) {
      tokens.push({ kind: 'punct', text: punct, at });
      offset += punct.length;
      continue;
    }
    // A leading minus belongs to a number (thresholds may be negative).
    if (c === '-' && (isDigit(source.charAt(offset + 1)) || source.charAt(offset + 1) === '.')) {
      offset++;
      const n = readNumber(at);
      if (n.kind !== 'number') throw new QueryError('a duration cannot be negative', at);
      tokens.push({ ...n, text: `-${n.text}`, value: -(n.value ?? 0) });
      continue;
    }
    throw new QueryError(`unexpected character ${JSON.stringify(c)}`, at);
  }
  tokens.push({ kind: 'eof', text: '', at: here() });
  return tokens;

  function readString(quote: string, at: Position): Token {
    offset++;
    let value = '';
    while (true) {
      if (offset >= source.length) throw new QueryError(`unterminated string (expected ${quote})`, here());
      const ch = source.charAt(offset);
      if (ch === '\n') throw new QueryError(`unterminated string (expected ${quote})`, here());
      if (ch === '\u0000') throw new QueryError('NUL character not allowed', here());
      if (ch === quote) {
        offset++;
        return { kind: 'string', text: value, at };
      }
      if (ch === '\\') {
        const next = source.charAt(offset + 1);
        const escaped = ESCAPES[next];
        if (escaped === undefined) throw new QueryError(`unknown escape \\${next}`, here());
        value += escaped;
        offset += 2;
        continue;
      }
      value += ch;
      offset++;
    }
  }

  function readNumber(at: Position): Token {
    const start = offset;
    const match = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(source.slice(offset));
    const written = match?.[0] ?? '';
    offset += written.length;
    let unitEnd = offset;
    while (unitEnd < source.length && /[A-Za-z]/.test(source.charAt(unitEnd))) unitEnd++;
    const unit = source.slice(offset, unitEnd);
    if (!unit) return { kind: 'number', text: written, at, value: Number(written) };
    const seconds = UNIT_SECONDS[unit];
    if (seconds === undefined || !/^\d+$/.test(written))
      throw new QueryError(
        `invalid duration ${JSON.stringify(source.slice(start, unitEnd))} (use e.g. 30s, 5m, 1h, 2d)`,
        at,
      );
    offset = unitEnd;
    return { kind: 'duration', text: source.slice(start, unitEnd), at, value: Number(written) * seconds };
  }
}
