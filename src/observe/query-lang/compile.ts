import { type RawBuilder, sql } from 'kysely';
import type { AbsentExpr, AggregationExpr, AlertExpr, Matcher, Selector } from './ast.js';
import { QueryError } from './errors.js';

/**
 * Compiles parsed expressions into Kysely `sql` fragments. Every value taken from the query text is a
 * bound parameter (`${value}` in a `sql` template); identifiers come only from the fixed tables below
 * (`sql.ref` of a whitelisted column). Label names are values too: `labels ->> $1`.
 */

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Where the compiled fragment runs: who may be seen, and the evaluation time. */
export interface CompileScope {
  /** Restricts every row to this project (a project's rule or search); null = platform-wide. */
  projectId: string | null;
}

/** How the log table is named in the surrounding query (the log search may alias it). */
export type LogTableRef = 'log_entries' | 'l';

type Column = { column: string; kind: 'text' | 'uuid' | 'level' };
/** Log labels that are columns; any other label is an attribute (`attributes ->> label`). */
const LOG_COLUMNS: Record<string, Column> = {
  level: { column: 'level', kind: 'level' },
  service: { column: 'service', kind: 'text' },
  message: { column: 'message', kind: 'text' },
  body: { column: 'message', kind: 'text' },
  trace_id: { column: 'trace_id', kind: 'text' },
  span_id: { column: 'span_id', kind: 'text' },
  session_id: { column: 'session_id', kind: 'uuid' },
  user_id: { column: 'user_id', kind: 'uuid' },
};

const ORDINAL_OPS = new Set(['>=', '>', '<=', '<']);

/** `^(?:…)$`: matchers are anchored, as in PromQL (`status=~"5.."` means the whole value). */
const anchored = (re: string) => `^(?:${re})$`;

function textCondition(expr: RawBuilder<unknown>, m: Matcher): RawBuilder<boolean> {
  switch (m.op) {
    case '=':
      return sql<boolean>`${expr} = ${m.value}`;
    case '!=':
      return sql<boolean>`${expr} <> ${m.value}`;
    case '=~':
      return sql<boolean>`${expr} ~ ${anchored(m.value)}`;
    case '!~':
      return sql<boolean>`${expr} !~ ${anchored(m.value)}`;
    default:
      throw new QueryError(`'${m.op}' compares levels only; use = != =~ !~ here`, m.labelAt);
  }
}

function levelCondition(expr: RawBuilder<unknown>, m: Matcher): RawBuilder<boolean> {
  if (m.op === '=~' || m.op === '!~') return textCondition(expr, m);
  if (!(LOG_LEVELS as readonly string[]).includes(m.value))
    throw new QueryError(
      `unknown level ${JSON.stringify(m.value)} (one of ${LOG_LEVELS.join(', ')})`,
      m.valueAt,
    );
  if (!ORDINAL_OPS.has(m.op)) return textCondition(expr, m);
  // The levels at or above (below) the given one, as one bound array: an index on level still applies.
  const index = LOG_LEVELS.indexOf(m.value as (typeof LOG_LEVELS)[number]);
  const levels = LOG_LEVELS.filter((_, i) =>
    m.op === '>=' ? i >= index : m.op === '>' ? i > index : m.op === '<=' ? i <= index : i < index,
  );
  return sql<boolean>`${expr} = any(${levels}::text[])`;
}

function uuidCondition(expr: RawBuilder<unknown>, m: Matcher): RawBuilder<boolean> {
  if (m.op === '=' || m.op === '!=') {
    if (!UUID.test(m.value)) throw new QueryError(`${m.label} must be a uuid`, m.valueAt);
    return m.op === '='
      ? sql<boolean>`${expr} = ${m.value}::uuid`
      : sql<boolean>`${expr} is distinct from ${m.value}::uuid`;
  }
  return textCondition(sql`coalesce(${expr}::text, '')`, m);
}

/** `project` names a project by id or name. */
function projectCondition(column: RawBuilder<unknown>, m: Matcher): RawBuilder<boolean> {
  const match =
    m.op === '=~' || m.op === '!~'
      ? sql<boolean>`p.name ~ ${anchored(m.value)}`
      : ORDINAL_OPS.has(m.op)
        ? (() => {
            throw new QueryError(`'${m.op}' compares levels only; use = != =~ !~ here`, m.labelAt);
          })()
        : UUID.test(m.value)
          ? sql<boolean>`p.id = ${m.value}::uuid`
          : sql<boolean>`p.name = ${m.value}`;
  const inProjects = sql<boolean>`${column} in (select p.id from projects p where ${match})`;
  return m.op === '=' || m.op === '=~' ? inProjects : sql<boolean>`not coalesce(${inProjects}, false)`;
}

const and = (parts: RawBuilder<boolean>[]): RawBuilder<boolean> =>
  parts.length === 0 ? sql<boolean>`true` : sql<boolean>`(${sql.join(parts, sql` and `)})`;

function logMatchers(matchers: Matcher[], table: LogTableRef): RawBuilder<boolean>[] {
  const col = (name: string) => sql.ref(`${table}.${name}`);
  return matchers.map((m) => {
    if (m.label === 'project') return projectCondition(col('project_id'), m);
    const known = LOG_COLUMNS[m.label];
    if (known) {
      const c = col(known.column);
      return known.kind === 'level'
        ? levelCondition(c, m)
        : known.kind === 'uuid'
          ? uuidCondition(c, m)
          : textCondition(c, m);
    }
    const key = m.label.startsWith('attributes.') ? m.label.slice('attributes.'.length) : m.label;
    return textCondition(sql`coalesce(${col('attributes')} ->> ${key}, '')`, m);
  });
}

/** The WHERE fragment of a log filter (`GET /api/observe/logs?query=`, the live tail). */
export function compileLogFilter(
  selector: Selector,
  scope: CompileScope,
  table: LogTableRef = 'log_entries',
): RawBuilder<boolean> {
  const parts = logMatchers(selector.matchers, table);
  if (scope.projectId) parts.push(sql<boolean>`${sql.ref(`${table}.project_id`)} = ${scope.projectId}::uuid`);
  return and(parts);
}

function metricMatchers(selector: Selector, scope: CompileScope): RawBuilder<boolean>[] {
  const parts: RawBuilder<boolean>[] = [sql<boolean>`s.name = ${selector.name}`];
  for (const m of selector.matchers) {
    if (m.label === 'project') {
      parts.push(projectCondition(sql.ref('s.project_id'), m));
    } else if (m.label === 'service') {
      parts.push(
        textCondition(sql`coalesce(s.labels ->> 'service', s.labels ->> 'service.name', s.service, '')`, m),
      );
    } else if (m.op === '=' && m.value !== '') {
      // Containment uses the GIN index on labels.
      parts.push(sql<boolean>`s.labels @> ${JSON.stringify({ [m.label]: m.value })}::jsonb`);
    } else {
      parts.push(textCondition(sql`coalesce(s.labels ->> ${m.label}, '')`, m));
    }
  }
  if (scope.projectId) parts.push(sql<boolean>`s.project_id = ${scope.projectId}::uuid`);
  return parts;
}

const windowStart = (at: Date, seconds: number) =>
  sql`(${at.toISOString()}::timestamptz - make_interval(secs => ${seconds}))`;
const windowEnd = (at: Date) => sql`${at.toISOString()}::timestamptz`;

const AGGREGATE_SQL: Record<'avg' | 'sum' | 'min' | 'max', (v: RawBuilder<unknown>) => RawBuilder<unknown>> =
  {
    avg: (v) => sql`avg(${v})`,
    sum: (v) => sql`sum(${v})`,
    min: (v) => sql`min(${v})`,
    max: (v) => sql`max(${v})`,
  };

/** A single-row SELECT with a `value` column: the aggregation over its window ending at `at`. */
function aggregationQuery(
  expr: AggregationExpr,
  scope: CompileScope,
  at: Date,
): RawBuilder<{ value: number | null }> {
  const { selector, fn } = expr;
  const seconds = selector.rangeSeconds;
  if (selector.name === 'logs') {
    if (fn !== 'count' && fn !== 'rate')
      throw new QueryError(`${fn}() needs a metric; over logs use count() or rate()`, expr.fnAt);
    const where = and([
      ...logMatchers(selector.matchers, 'l'),
      ...(scope.projectId ? [sql<boolean>`l.project_id = ${scope.projectId}::uuid`] : []),
      sql<boolean>`l.timestamp > ${windowStart(at, seconds)}`,
      sql<boolean>`l.timestamp <= ${windowEnd(at)}`,
    ]);
    const value = fn === 'count' ? sql`count(*)::float8` : sql`count(*)::float8 / ${seconds}`;
    return sql<{ value: number | null }>`select ${value} as value from log_entries l where ${where}`;
  }
  const where = and([
    ...metricMatchers(selector, scope),
    sql<boolean>`ms.timestamp > ${windowStart(at, seconds)}`,
    sql<boolean>`ms.timestamp <= ${windowEnd(at)}`,
  ]);
  const from = sql`metric_samples ms join metric_series s on s.id = ms.series_id`;
  // Histogram and summary samples carry sum/count; their "value" is the mean of the observations.
  const sampleValue = sql`coalesce(ms.value, ms.sum / nullif(ms.count, 0))`;
  switch (fn) {
    case 'avg':
    case 'sum':
    case 'min':
    case 'max':
      return sql<{
        value: number | null;
      }>`select ${AGGREGATE_SQL[fn](sampleValue)}::float8 as value from ${from} where ${where}`;
    case 'count':
      return sql<{ value: number | null }>`select count(*)::float8 as value from ${from} where ${where}`;
    case 'last':
      return sql<{
        value: number | null;
      }>`select ${sampleValue}::float8 as value from ${from} where ${where} order by ms.timestamp desc limit 1`;
    case 'rate':
      // Per series, the increase over the window (counters only grow; a reset counts from zero), per second.
      return sql<{ value: number | null }>`select sum(increase)::float8 / ${seconds} as value from (
        select case when max(ms.value) < min(ms.value) then max(ms.value) else max(ms.value) - min(ms.value) end as increase
        from ${from} where ${where} group by ms.series_id) per_series`;
  }
}

function absentQuery(expr: AbsentExpr, scope: CompileScope, at: Date): RawBuilder<{ value: number | null }> {
  const count: AggregationExpr = {
    kind: 'aggregation',
    fn: 'count',
    fnAt: expr.fnAt,
    selector: expr.selector,
  };
  return sql<{
    value: number | null;
  }>`select case when coalesce((${aggregationQuery(count, scope, at)}), 0) = 0 then 1 else 0 end::float8 as value`;
}

/**
 * The SELECT that evaluates an alert expression at `at`: one row, `value` (the aggregation; for
 * `absent`, 1 when no data arrived in the window and 0 otherwise). The comparison is done by the
 * caller with `conditionHolds`.
 */
export function compileAlert(
  expr: AlertExpr,
  scope: CompileScope,
  at: Date,
): RawBuilder<{ value: number | null }> {
  return expr.kind === 'absent' ? absentQuery(expr, scope, at) : aggregationQuery(expr.left, scope, at);
}

/** Whether the evaluated value meets the expression's condition; no data (null) never does, except `absent`. */
export function conditionHolds(expr: AlertExpr, value: number | null): boolean {
  if (expr.kind === 'absent') return value === 1;
  if (value === null || !Number.isFinite(value)) return false;
  const t = expr.threshold;
  switch (expr.op) {
    case '>':
      return value > t;
    case '>=':
      return value >= t;
    case '<':
      return value < t;
    case '<=':
      return value <= t;
    case '==':
      return value === t;
    case '!=':
      return value !== t;
  }
}
