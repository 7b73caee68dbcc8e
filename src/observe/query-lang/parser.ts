import type {
  AbsentExpr,
  AggregationExpr,
  AggregationFn,
  AlertExpr,
  CompareOp,
  Matcher,
  MatchOp,
  Selector,
} from './ast.js';
import { QueryError } from './errors.js';
import { type Token, tokenize } from './lexer.js';
import { NOT_LINEAR, userRegExp } from './regex.js';

const AGGREGATIONS: readonly AggregationFn[] = ['avg', 'sum', 'min', 'max', 'count', 'rate', 'last'];
const COMPARE_OPS: readonly CompareOp[] = ['>', '>=', '<', '<=', '==', '!='];
const MATCH_OPS: readonly MatchOp[] = ['=', '!=', '=~', '!~', '>=', '>', '<=', '<'];
const MAX_MATCHERS = 32;
/** Windows longer than the hot tier's 48 h would silently read partial data. */
const MAX_RANGE_SECONDS = 48 * 3600;

const describe = (t: Token) =>
  t.kind === 'eof'
    ? 'end of input'
    : t.kind === 'string'
      ? `string ${JSON.stringify(t.text)}`
      : `'${t.text}'`;

/** A recursive-descent parser over the token list; each rule is one method. */
class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.pos] as Token;
  }
  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.pos++;
    return t;
  }
  private isPunct(text: string): boolean {
    const t = this.peek();
    return t.kind === 'punct' && t.text === text;
  }
  private expectPunct(text: string): Token {
    const t = this.peek();
    if (t.kind !== 'punct' || t.text !== text) throw new QueryError(`expected '${text}'`, t.at, describe(t));
    return this.next();
  }
  expectEnd(): void {
    const t = this.peek();
    if (t.kind !== 'eof') throw new QueryError(`expected end of input`, t.at, describe(t));
  }

  /** alert := 'absent' '(' rangeSelector ')' | aggregation compareOp number */
  alert(): AlertExpr {
    const t = this.peek();
    if (t.kind === 'ident' && t.text === 'absent') {
      this.next();
      this.expectPunct('(');
      const selector = this.rangeSelector();
      this.expectPunct(')');
      return { kind: 'absent', fnAt: t.at, selector } satisfies AbsentExpr;
    }
    const left = this.aggregation();
    const opToken = this.peek();
    if (opToken.kind !== 'punct' || !(COMPARE_OPS as readonly string[]).includes(opToken.text))
      throw new QueryError(`expected a comparison (${COMPARE_OPS.join(' ')})`, opToken.at, describe(opToken));
    this.next();
    const threshold = this.number();
    return { kind: 'comparison', left, op: opToken.text as CompareOp, threshold, opAt: opToken.at };
  }

  /** aggregation := fn '(' rangeSelector ')' */
  aggregation(): AggregationExpr {
    const t = this.peek();
    if (t.kind !== 'ident' || !(AGGREGATIONS as readonly string[]).includes(t.text))
      throw new QueryError(`expected an aggregation (absent, ${AGGREGATIONS.join(', ')})`, t.at, describe(t));
    this.next();
    this.expectPunct('(');
    const selector = this.rangeSelector();
    this.expectPunct(')');
    return { kind: 'aggregation', fn: t.text as AggregationFn, fnAt: t.at, selector };
  }

  private number(): number {
    const t = this.peek();
    if (t.kind !== 'number' || !Number.isFinite(t.value))
      throw new QueryError(`expected a number`, t.at, describe(t));
    this.next();
    return t.value as number;
  }

  private rangeSelector(): Selector & { rangeSeconds: number } {
    const s = this.selector(true);
    if (s.rangeSeconds === null) {
      const t = this.peek();
      throw new QueryError(`expected '[' with a time window (e.g. [5m])`, t.at, describe(t));
    }
    return s as Selector & { rangeSeconds: number };
  }

  /** selector := [name] ['{' matchers '}'] ['[' duration ']']; a bare `{…}` names the logs. */
  selector(allowRange: boolean): Selector {
    const first = this.peek();
    let name = 'logs';
    if (first.kind === 'ident') {
      name = this.next().text;
    } else if (!this.isPunct('{')) {
      throw new QueryError(`expected a metric name, 'logs' or '{'`, first.at, describe(first));
    }
    const matchers: Matcher[] = [];
    if (this.isPunct('{')) {
      this.next();
      while (!this.isPunct('}')) {
        if (matchers.length >= MAX_MATCHERS)
          throw new QueryError(`more than ${MAX_MATCHERS} label matchers`, this.peek().at);
        matchers.push(this.matcher());
        if (this.isPunct(',')) {
          this.next();
          continue;
        }
        const t = this.peek();
        if (!this.isPunct('}')) throw new QueryError(`expected ',' or '}'`, t.at, describe(t));
      }
      this.expectPunct('}');
    }
    let rangeSeconds: number | null = null;
    let rangeAt = null;
    if (allowRange && this.isPunct('[')) {
      this.next();
      const d = this.peek();
      if (d.kind !== 'duration')
        throw new QueryError(`expected a duration (e.g. 30s, 5m, 1h)`, d.at, describe(d));
      this.next();
      rangeSeconds = d.value as number;
      rangeAt = d.at;
      if (rangeSeconds <= 0 || rangeSeconds > MAX_RANGE_SECONDS)
        throw new QueryError('the time window must be between 1s and 48h', d.at);
      this.expectPunct(']');
    }
    return { name, nameAt: first.at, matchers, rangeSeconds, rangeAt };
  }

  /** matcher := label op string */
  private matcher(): Matcher {
    const label = this.peek();
    if (label.kind !== 'ident') throw new QueryError(`expected a label name`, label.at, describe(label));
    this.next();
    const op = this.peek();
    if (op.kind !== 'punct' || !(MATCH_OPS as readonly string[]).includes(op.text))
      throw new QueryError(`expected one of = != =~ !~`, op.at, describe(op));
    this.next();
    const value = this.peek();
    if (value.kind !== 'string') throw new QueryError(`expected a quoted string`, value.at, describe(value));
    this.next();
    if (op.text === '=~' || op.text === '!~') {
      try {
        userRegExp(value.text);
      } catch (err) {
        throw new QueryError(
          err instanceof SyntaxError && err.message === NOT_LINEAR
            ? NOT_LINEAR
            : 'invalid regular expression',
          value.at,
        );
      }
    }
    return {
      label: label.text,
      op: op.text as MatchOp,
      value: value.text,
      labelAt: label.at,
      valueAt: value.at,
    };
  }
}

/** Parses an alert expression: `avg(x{a="b"}[5m]) > 300`, `absent(heartbeat[2m])`. */
export function parseAlert(source: string): AlertExpr {
  const p = new Parser(tokenize(source));
  const expr = p.alert();
  p.expectEnd();
  return expr;
}

/** Parses a log filter: `{level>="warn", service="api"}` or `logs{…}` (no time window: the search has its own). */
export function parseLogFilter(source: string): Selector {
  const p = new Parser(tokenize(source));
  const selector = p.selector(false);
  p.expectEnd();
  if (selector.name !== 'logs')
    throw new QueryError(`a log filter selects 'logs', not the metric '${selector.name}'`, selector.nameAt);
  return selector;
}

/** Parses a metric aggregation without a threshold (saved metric searches): `rate(x[1m])`. */
export function parseAggregation(source: string): AggregationExpr {
  const p = new Parser(tokenize(source));
  const expr = p.aggregation();
  p.expectEnd();
  return expr;
}
