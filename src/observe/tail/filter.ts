import type { Db } from '../../store/db.js';
import type { LogFilter } from '../queries.js';
import {
  compileLogMatcher,
  type LiveLogEntry,
  type Matcher,
  parseLogFilter,
  parseOrRefuse,
  type Selector,
} from '../query-lang/index.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const attributeText = (v: unknown) =>
  v === null || v === undefined
    ? null
    : typeof v === 'string'
      ? v
      : typeof v === 'object'
        ? JSON.stringify(v)
        : String(v);

/** The search's filter parameters (`logConditions` in SQL), evaluated in memory. */
export function logFilterMatcher(f: LogFilter): (e: LiveLogEntry) => boolean {
  const minRank = f.minLevel ? LEVELS.indexOf(f.minLevel) : 0;
  const q = f.q?.toLowerCase();
  return (e) =>
    (f.projectId === undefined || e.project_id === f.projectId) &&
    (!f.sessionId || e.session_id === f.sessionId) &&
    (!f.traceId || e.trace_id === f.traceId) &&
    (f.service === undefined || e.service === f.service) &&
    LEVELS.indexOf(e.level) >= minRank &&
    (!q || e.message.toLowerCase().includes(q)) &&
    (f.attributes ?? []).every(([k, v]) => attributeText(e.attributes?.[k]) === v);
}

/** The ids of the projects each `project` matcher names (by id, by name, or a name pattern). */
async function resolveProjects(db: Db, selector: Selector): Promise<Map<Matcher, Set<string>>> {
  const out = new Map<Matcher, Set<string>>();
  for (const m of selector.matchers) {
    if (m.label !== 'project') continue;
    let q = db.selectFrom('projects').select('id');
    q =
      m.op === '=~' || m.op === '!~'
        ? q.where('name', '~', `^(?:${m.value})$`)
        : UUID.test(m.value)
          ? q.where('id', '=', m.value)
          : q.where('name', '=', m.value);
    out.set(m, new Set((await q.execute()).map((r) => r.id)));
  }
  return out;
}

/** The tail's whole filter: the search parameters and the `query` (400 with the position when bad). */
export async function liveFilter(
  db: Db,
  filter: LogFilter,
  query: string | undefined,
): Promise<(e: LiveLogEntry) => boolean> {
  const base = logFilterMatcher(filter);
  if (!query) return base;
  const selector = parseOrRefuse(() => parseLogFilter(query), 'query.query');
  const projects = await resolveProjects(db, selector);
  const matches = parseOrRefuse(
    () => compileLogMatcher(selector, (m) => projects.get(m) ?? new Set()),
    'query.query',
  );
  return (e) => base(e) && matches(e);
}
