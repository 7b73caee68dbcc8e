import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type RawBuilder,
} from 'kysely';
import { describe, expect, it } from 'vitest';
import { compileAlert, compileLogFilter, conditionHolds } from './compile.js';
import { QueryError } from './errors.js';
import { parseAlert, parseLogFilter } from './parser.js';

// Compiles without a database: the SQL text and its bound parameters as PostgreSQL would receive them.
const db = new Kysely<Record<string, never>>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});
const compiled = (b: RawBuilder<unknown>) => b.compile(db);
const at = new Date('2026-01-02T03:04:05.000Z');
const PROJECT = '11111111-2222-4333-8444-555555555555';

/** Quotes a value for the query language (the escapes the lexer understands). */
const quote = (v: string) =>
  `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r')}"`;

describe('observe query language: compiling to SQL', () => {
  it('binds every value and the evaluation time; identifiers are fixed', () => {
    const q = compiled(
      compileAlert(
        parseAlert('avg(http_server_duration_ms{service="api", route!="/x"}[5m]) > 300'),
        { projectId: PROJECT },
        at,
      ),
    );
    expect(q.sql).toContain('from metric_samples ms join metric_series s on s.id = ms.series_id');
    expect(q.sql).not.toContain('api');
    expect(q.sql).not.toContain('http_server_duration_ms');
    expect(q.parameters).toEqual(
      expect.arrayContaining([
        'http_server_duration_ms',
        'api',
        'route',
        '/x',
        PROJECT,
        at.toISOString(),
        300,
      ]),
    );
    // The threshold is compared in the evaluator, not in SQL.
    expect(q.parameters).not.toContain(300 + 0.5);
  });

  it('anchors regular expressions and turns level ordering into a bound list', () => {
    const q = compiled(
      compileLogFilter(
        parseLogFilter('{level>="warn", message=~"time.?out", attributes.http.status!~"2.."}'),
        { projectId: null },
      ),
    );
    expect(q.parameters).toEqual([['warn', 'error', 'fatal'], '^(?:time.?out)$', 'http.status', '^(?:2..)$']);
    expect(q.sql).toBe(
      '("log_entries"."level" = any($1::text[]) and "log_entries"."message" ~ $2 and coalesce("log_entries"."attributes" ->> $3, \'\') !~ $4)',
    );
  });

  it('refuses what does not make sense, with the position', () => {
    const refusal = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err instanceof QueryError ? err.message : String(err);
      }
      return 'accepted';
    };
    expect(refusal(() => compileAlert(parseAlert('avg(logs[5m]) > 1'), { projectId: null }, at))).toBe(
      'avg() needs a metric; over logs use count() or rate() at 1:1',
    );
    expect(refusal(() => compileLogFilter(parseLogFilter('{level="loud"}'), { projectId: null }))).toBe(
      'unknown level "loud" (one of trace, debug, info, warn, error, fatal) at 1:8',
    );
    expect(refusal(() => compileLogFilter(parseLogFilter('{session_id="nope"}'), { projectId: null }))).toBe(
      'session_id must be a uuid at 1:13',
    );
    expect(refusal(() => compileLogFilter(parseLogFilter('{service>"a"}'), { projectId: null }))).toContain(
      "'>' compares levels only",
    );
  });

  it('evaluates conditions; no data never meets a threshold', () => {
    const gt = parseAlert('count(logs[1m]) > 5');
    expect(conditionHolds(gt, 6)).toBe(true);
    expect(conditionHolds(gt, 5)).toBe(false);
    expect(conditionHolds(gt, null)).toBe(false);
    expect(conditionHolds(parseAlert('max(x[1m]) != 0'), null)).toBe(false);
    expect(conditionHolds(parseAlert('absent(x[1m])'), 1)).toBe(true);
    expect(conditionHolds(parseAlert('absent(x[1m])'), 0)).toBe(false);
  });

  // Property: for any string a user writes into a query, the SQL text is the same as for a harmless
  // placeholder (so the value cannot change the statement), and the string reaches PostgreSQL only
  // as a bound parameter.
  it('property: hostile strings end up only in bound parameters', () => {
    let seed = 0x5eed;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pieces = [
      "'",
      "''",
      '"',
      '\\',
      ';',
      '--',
      '/*',
      '*/',
      '$1',
      '$$',
      '$tag$',
      ')',
      '(',
      'OR 1=1',
      'DROP TABLE users',
      '\n',
      '\t',
      'é',
      '😀',
      '%',
      '_',
      '::text',
      "E'\\x27",
      'pg_sleep(10)',
      'union select',
      '}',
      ']',
      '{',
      '[',
    ];
    const hostile = () => {
      let s = 'Z';
      const n = 1 + Math.floor(random() * 6);
      for (let i = 0; i < n; i++) s += pieces[Math.floor(random() * pieces.length)];
      return `${s}Q`;
    };
    const templates: ((v: string) => { build: () => RawBuilder<unknown> })[] = [
      (v) => ({
        build: () =>
          compileLogFilter(parseLogFilter(`{service=${quote(v)}, message!=${quote(v)}}`), {
            projectId: PROJECT,
          }),
      }),
      (v) => ({
        build: () =>
          compileLogFilter(
            parseLogFilter(`logs{attributes.k=${quote(v)}, other!=${quote(v)}, project=${quote(v)}}`),
            { projectId: null },
          ),
      }),
      (v) => ({
        build: () =>
          compileAlert(
            parseAlert(`avg(cpu{host=${quote(v)}, service!=${quote(v)}}[5m]) > 1`),
            { projectId: PROJECT },
            at,
          ),
      }),
      (v) => ({
        build: () =>
          compileAlert(
            parseAlert(`rate(req_total{code=${quote(v)}, project=${quote(v)}}[1m]) > 1`),
            { projectId: null },
            at,
          ),
      }),
      (v) => ({
        build: () =>
          compileAlert(
            parseAlert(`count(logs{trace_id=${quote(v)}, user_agent=${quote(v)}}[10m]) >= 0`),
            { projectId: PROJECT },
            at,
          ),
      }),
      (v) => ({
        build: () =>
          compileAlert(
            parseAlert(`absent(heartbeat{w=${quote(v)}, service=${quote(v)}}[2m])`),
            { projectId: null },
            at,
          ),
      }),
      (v) => ({
        build: () => compileAlert(parseAlert(`last(g{k!=${quote(v)}}[2m]) < -3`), { projectId: null }, at),
      }),
    ];
    let checked = 0;
    for (let round = 0; round < 300; round++) {
      const value = hostile();
      for (const template of templates) {
        const reference = compiled(template('placeholder').build());
        const q = compiled(template(value).build());
        expect(q.sql).toBe(reference.sql);
        expect(q.sql).not.toContain(value);
        const params = JSON.stringify(q.parameters);
        expect(params.includes(JSON.stringify(value).slice(1, -1))).toBe(true);
        checked++;
      }
    }
    // Regular expressions: anchored, but still only a parameter.
    for (let round = 0; round < 100; round++) {
      const value = hostile().replace(/[()[\]{}\\*+?|^$.]/g, '');
      const q = compiled(
        compileLogFilter(parseLogFilter(`{message=~${quote(value)}, x!~${quote(value)}}`), {
          projectId: null,
        }),
      );
      expect(q.sql).not.toContain(value);
      expect(q.parameters).toContain(`^(?:${value})$`);
      checked++;
    }
    expect(checked).toBe(300 * templates.length + 100);
  });

  it('label names go to parameters too, and label names cannot carry SQL (the lexer refuses)', () => {
    const q = compiled(
      compileAlert(parseAlert('avg(cpu{weird.label:x="1"}[5m]) > 1'), { projectId: null }, at),
    );
    expect(q.sql).not.toContain('weird');
    expect(q.parameters).toContain('{"weird.label:x":"1"}');
    expect(() => parseAlert('avg(cpu{a"b="1"}[5m]) > 1')).toThrow(QueryError);
  });
});
