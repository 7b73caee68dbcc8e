import type { Matcher, Selector } from './ast.js';
import { LOG_LEVELS } from './compile.js';
import { QueryError } from './errors.js';
import { userRegExp } from './regex.js';

/** A log entry as the live tail sees it (the view published on `observe.logs`). */
export interface LiveLogEntry {
  level: string;
  service: string;
  message: string;
  trace_id: string | null;
  span_id: string | null;
  project_id: string | null;
  session_id: string | null;
  user_id: string | null;
  attributes: Record<string, unknown>;
}

/** The project ids a `project` matcher selects (names resolved once, when the filter is built). */
export type ProjectResolver = (m: Matcher) => ReadonlySet<string>;

const COLUMN_OF: Record<string, keyof LiveLogEntry> = {
  level: 'level',
  service: 'service',
  message: 'message',
  body: 'message',
  trace_id: 'trace_id',
  span_id: 'span_id',
  session_id: 'session_id',
  user_id: 'user_id',
};

const text = (v: unknown): string =>
  v === null || v === undefined
    ? ''
    : typeof v === 'string'
      ? v
      : typeof v === 'object'
        ? JSON.stringify(v)
        : String(v);

function valueTest(m: Matcher): (v: string) => boolean {
  switch (m.op) {
    case '=':
      return (v) => v === m.value;
    case '!=':
      return (v) => v !== m.value;
    case '=~': {
      const re = userRegExp(`^(?:${m.value})$`);
      return (v) => re.test(v);
    }
    case '!~': {
      const re = userRegExp(`^(?:${m.value})$`);
      return (v) => !re.test(v);
    }
    default: {
      const index = LOG_LEVELS.indexOf(m.value as (typeof LOG_LEVELS)[number]);
      if (m.label !== 'level')
        throw new QueryError(`'${m.op}' compares levels only; use = != =~ !~ here`, m.labelAt);
      if (index < 0) throw new QueryError(`unknown level ${JSON.stringify(m.value)}`, m.valueAt);
      const rank = (v: string) => LOG_LEVELS.indexOf(v as (typeof LOG_LEVELS)[number]);
      return m.op === '>='
        ? (v) => rank(v) >= index
        : m.op === '>'
          ? (v) => rank(v) > index
          : m.op === '<='
            ? (v) => rank(v) >= 0 && rank(v) <= index
            : (v) => rank(v) >= 0 && rank(v) < index;
    }
  }
}

/**
 * The same filter as `compileLogFilter`, evaluated in memory on entries as they arrive (the live
 * tail). Regular expressions are JavaScript's here and PostgreSQL's in the search; the documented
 * subset (classes, groups, alternation, quantifiers) means the same in both.
 */
export function compileLogMatcher(
  selector: Selector,
  projects: ProjectResolver,
): (e: LiveLogEntry) => boolean {
  const tests = selector.matchers.map((m): ((e: LiveLogEntry) => boolean) => {
    if (m.label === 'project') {
      if (m.op !== '=' && m.op !== '!=' && m.op !== '=~' && m.op !== '!~')
        throw new QueryError(`'${m.op}' compares levels only; use = != =~ !~ here`, m.labelAt);
      const ids = projects(m);
      const positive = m.op === '=' || m.op === '=~';
      return (e) => (e.project_id !== null && ids.has(e.project_id)) === positive;
    }
    const test = valueTest(m);
    const column = COLUMN_OF[m.label];
    if (column) return (e) => test(text(e[column]));
    const key = m.label.startsWith('attributes.') ? m.label.slice('attributes.'.length) : m.label;
    return (e) => test(text(e.attributes?.[key]));
  });
  return (e) => tests.every((t) => t(e));
}
