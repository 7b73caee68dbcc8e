/** Syntax tree of the observe query language (see docs/observe-query.md). */

/** 1-based line and column of a token's first character. */
export interface Position {
  line: number;
  column: number;
  /** 0-based offset in the source. */
  offset: number;
}

export type MatchOp = '=' | '!=' | '=~' | '!~' | '>=' | '>' | '<=' | '<';
export type CompareOp = '>' | '>=' | '<' | '<=' | '==' | '!=';
export type AggregationFn = 'avg' | 'sum' | 'min' | 'max' | 'count' | 'rate' | 'last';

export interface Matcher {
  label: string;
  op: MatchOp;
  value: string;
  /** Where the label name starts and where the value string starts (errors found later point here). */
  labelAt: Position;
  valueAt: Position;
}

/** `name{matchers}[range]`; `logs` names the log entries, anything else a metric. */
export interface Selector {
  name: string;
  nameAt: Position;
  matchers: Matcher[];
  /** Window length in seconds, when a `[5m]` range was given. */
  rangeSeconds: number | null;
  rangeAt: Position | null;
}

export interface AggregationExpr {
  kind: 'aggregation';
  fn: AggregationFn;
  fnAt: Position;
  selector: Selector & { rangeSeconds: number };
}

export interface AbsentExpr {
  kind: 'absent';
  fnAt: Position;
  selector: Selector & { rangeSeconds: number };
}

/** `<aggregation> <op> <number>`: what an alert rule evaluates. */
export interface ComparisonExpr {
  kind: 'comparison';
  left: AggregationExpr;
  op: CompareOp;
  threshold: number;
  opAt: Position;
}

export type AlertExpr = ComparisonExpr | AbsentExpr;
