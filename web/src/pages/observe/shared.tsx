/** What the observability pages share: the time ranges, the project picker, query errors shown at their position. */
import { type ApiError, api } from '../../api/client';
import { ErrorBox, Select, useApi } from '../../ui';

export interface ObserveContext {
  /** Set inside a project; absent on the instance-wide pages. */
  project?: { id: string; full_name: string } | undefined;
  base: string;
  item?: string | undefined;
}

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type Level = (typeof LEVELS)[number];

export const RANGES: [string, string][] = [
  ['900', 'Last 15 minutes'],
  ['3600', 'Last hour'],
  ['21600', 'Last 6 hours'],
  ['86400', 'Last 24 hours'],
  ['604800', 'Last 7 days'],
];

/** The ISO start of a range given in seconds back from now. */
export function since(seconds: string): string {
  return new Date(Date.now() - Number(seconds) * 1000).toISOString();
}

/** The project filter of the instance-wide pages (a select over the projects one can see). */
export function ProjectPicker(props: { value: string; onChange: (v: string) => void }) {
  const projects = useApi(() => api('get', '/api/projects', { query: { limit: 100 } as never }), []);
  const options: [string, string][] = [
    ['', 'All projects'],
    ...(projects.data?.items ?? []).map((p): [string, string] => [p.id, p.full_name]),
  ];
  return <Select label="Project" value={props.value} onChange={props.onChange} options={options} />;
}

/** The position of a query error in the API's details (`line`, `column`), if it has one. */
export function queryPosition(error: unknown): { line: number; column: number; message: string } | null {
  const e = error as ApiError | undefined;
  if (!e || !Array.isArray(e.details)) return null;
  for (const d of e.details) {
    if (typeof d.line === 'number' && typeof d.column === 'number')
      return { line: d.line, column: d.column, message: String(d.message ?? e.message) };
  }
  return null;
}

/**
 * A refused query: the query with a caret under the column the parser stopped at, and the message;
 * other errors as the usual error box.
 */
export function QueryErrorView({ error, query }: { error: Error; query: string }) {
  const at = queryPosition(error);
  if (!at) return <ErrorBox error={error} />;
  const line = query.split('\n')[at.line - 1] ?? '';
  return (
    <div class="notice error query-error" role="alert">
      <strong>Invalid query</strong> at line {at.line}, column {at.column}: {at.message}
      <pre class="query-caret" aria-hidden="true">
        {line}
        {'\n'}
        {`${' '.repeat(Math.max(0, at.column - 1))}^`}
      </pre>
    </div>
  );
}

export function levelClass(level: string | null | undefined): string {
  return `lvl lvl-${level ?? 'info'}`;
}

/** Attributes as key/value rows. */
export function Attributes({ attrs, label }: { attrs: Record<string, unknown>; label: string }) {
  const entries = Object.entries(attrs);
  if (entries.length === 0) return <p class="muted">No attributes.</p>;
  return (
    <table class="table attrs" aria-label={label}>
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th scope="row" class="mono">
              {k}
            </th>
            <td class="mono">{typeof v === 'string' ? v : JSON.stringify(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function fmtMs(ms: number): string {
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function clock(iso: string): string {
  const d = new Date(iso);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString()}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
