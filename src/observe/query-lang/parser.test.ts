import { describe, expect, it } from 'vitest';
import { QueryError } from './errors.js';
import { parseAggregation, parseAlert, parseLogFilter } from './parser.js';

function errorOf(fn: () => unknown): QueryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof QueryError) return err;
    throw err;
  }
  throw new Error('expected a QueryError');
}

describe('observe query language: parser', () => {
  it('parses the documented alert examples', () => {
    const avg = parseAlert('avg(http_server_duration_ms{service="api"}[5m]) > 300');
    expect(avg).toMatchObject({
      kind: 'comparison',
      op: '>',
      threshold: 300,
      left: {
        fn: 'avg',
        selector: {
          name: 'http_server_duration_ms',
          rangeSeconds: 300,
          matchers: [{ label: 'service', op: '=', value: 'api' }],
        },
      },
    });
    const rate = parseAlert('rate(http_requests_total{status=~"5.."}[1m]) > 0.5');
    expect(rate).toMatchObject({
      threshold: 0.5,
      left: {
        fn: 'rate',
        selector: { rangeSeconds: 60, matchers: [{ label: 'status', op: '=~', value: '5..' }] },
      },
    });
    const logs = parseAlert('count(logs{level="error", project="x"}[10m]) > 5');
    expect(logs).toMatchObject({
      left: {
        fn: 'count',
        selector: {
          name: 'logs',
          rangeSeconds: 600,
          matchers: [{ label: 'level' }, { label: 'project', value: 'x' }],
        },
      },
    });
    const absent = parseAlert('absent(heartbeat{service="worker"}[2m])');
    expect(absent).toMatchObject({ kind: 'absent', selector: { name: 'heartbeat', rangeSeconds: 120 } });
  });

  it('accepts whitespace, newlines, comments, trailing commas, single quotes, escapes and negative thresholds', () => {
    const e = parseAlert(
      `# free disk\nmin(\n  disk.free_bytes{ host = 'a\\'b', mount!~"/boot.*", }[1h]\n) <= -1.5e3`,
    );
    expect(e).toMatchObject({
      op: '<=',
      threshold: -1500,
      left: {
        fn: 'min',
        selector: {
          name: 'disk.free_bytes',
          rangeSeconds: 3600,
          matchers: [
            { label: 'host', op: '=', value: "a'b", labelAt: { line: 3, column: 20 } },
            { label: 'mount', op: '!~', value: '/boot.*' },
          ],
        },
      },
    });
  });

  it('parses log filters with and without the logs name', () => {
    expect(parseLogFilter('{level>="warn", service="api"}').matchers).toHaveLength(2);
    expect(parseLogFilter('logs{attributes.http.status="500"}').matchers[0]).toMatchObject({
      label: 'attributes.http.status',
    });
    expect(parseLogFilter('logs').matchers).toEqual([]);
    expect(parseAggregation('rate(http_requests_total[1m])').fn).toBe('rate');
  });

  const invalid: [string, string, string][] = [
    ['avg(http_server_duration_ms{service="api"}[5m) > 300', "expected ']'", '1:46'],
    ['count(logs{level="error", project="x"}[10m] > 5', "expected ')'", '1:45'],
    ['avg(x{service="api"[5m]) > 3', "expected ',' or '}'", '1:20'],
    ['avg(x{service=api}[5m]) > 3', 'expected a quoted string', '1:15'],
    ['avg(x{service="api}[5m]) > 3', 'unterminated string', '1:29'],
    ['avg(x[5m])', 'expected a comparison', '1:11'],
    ['avg(x[5m]) > ', 'expected a number', '1:14'],
    ['avg(x[5m]) > 3 3', 'expected end of input', '1:16'],
    ['avg(x) > 3', "expected '[' with a time window", '1:6'],
    ['avg(x[5]) > 3', 'expected a duration', '1:7'],
    ['avg(x[5y]) > 3', 'invalid duration', '1:7'],
    ['avg(x[3d]) > 3', 'the time window must be between 1s and 48h', '1:7'],
    ['median(x[5m]) > 3', 'expected an aggregation', '1:1'],
    ['avg(x{a=~"("}[5m]) > 3', 'invalid regular expression', '1:10'],
    ['avg(x{a=~"(a)\\\\1"}[5m]) > 3', 'cannot run in linear time', '1:10'],
    ['avg(x{a=~"(?=a)a"}[5m]) > 3', 'cannot run in linear time', '1:10'],
    ['avg(x{a=~"a{1,100}"}[5m]) > 3', 'cannot run in linear time', '1:10'],
    ['avg(x{a~"b"}[5m]) > 3', 'unexpected character "~"', '1:8'],
    ['avg(x{="b"}[5m]) > 3', 'expected a label name', '1:7'],
    ['avg(x{a="\\q"}[5m]) > 3', 'unknown escape \\q', '1:10'],
    ['\n\n  absent(heartbeat{service="worker"}[2m]', "expected ')'", '3:41'],
    ['', 'expected an aggregation', '1:1'],
    ['avg(x{a="\u0000"}[5m]) > 3', 'NUL character not allowed', '1:10'],
    ['avg(x[5m]) > 3; drop table users', 'unexpected character ";"', '1:15'],
  ];
  it.each(invalid)('refuses %j: %s at %s', (source, problem, position) => {
    const err = errorOf(() => parseAlert(source));
    expect(err.message).toContain(problem);
    expect(`${err.at.line}:${err.at.column}`).toBe(position);
    expect(err.message).toContain(` at ${position}`);
  });

  it("reads as the issue shows: expected ']' at line:column", () => {
    const err = errorOf(() => parseAlert('count(logs{level="error", project="x"}[10m) > 5'));
    expect(err.message).toBe("expected ']' at 1:43 (found ')')");
  });

  it('refuses a metric in a log filter, and over-long queries', () => {
    expect(errorOf(() => parseLogFilter('cpu{a="b"}')).message).toBe(
      "a log filter selects 'logs', not the metric 'cpu' at 1:1",
    );
    expect(errorOf(() => parseLogFilter(`{a="${'x'.repeat(5000)}"}`)).message).toContain(
      'query longer than 4000 characters',
    );
    expect(errorOf(() => parseLogFilter('{level="warn"}[5m]')).message).toContain('expected end of input');
  });
});
