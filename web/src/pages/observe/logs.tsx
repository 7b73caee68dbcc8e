/**
 * The log search: filters (project, service, level ≥, session, trace), the query-language box (a
 * refused query is shown at its position), a time range, a live tail over server-sent events, rows
 * that expand to their attributes, and a link to each entry's trace.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type S } from '../../api/client';
import { useLocation } from '../../router';
import { Field, Link, Select } from '../../ui';
import {
  Attributes,
  clock,
  LEVELS,
  levelClass,
  type ObserveContext,
  ProjectPicker,
  QueryErrorView,
  RANGES,
  since,
} from './shared';

type Entry = S['LogEntry'];
const LIVE_MAX = 500;

interface Filters {
  project: string;
  service: string;
  level: string;
  session: string;
  trace: string;
  query: string;
  range: string;
}

function filterQuery(f: Filters, projectId: string | undefined) {
  const pid = projectId ?? f.project;
  return {
    ...(pid ? { project_id: pid } : {}),
    ...(f.service ? { service: f.service } : {}),
    ...(f.level ? { level: f.level } : {}),
    ...(f.session ? { session_id: f.session } : {}),
    ...(f.trace ? { trace_id: f.trace } : {}),
    ...(f.query.trim() ? { query: f.query } : {}),
  } as Record<string, string>;
}

export function Logs(props: ObserveContext) {
  const loc = useLocation();
  const [f, setF] = useState<Filters>(() => ({
    project: '',
    service: loc.query.get('service') ?? '',
    level: loc.query.get('level') ?? '',
    session: loc.query.get('session_id') ?? '',
    trace: loc.query.get('trace_id') ?? '',
    query: loc.query.get('query') ?? '',
    range: '3600',
  }));
  const set = (k: keyof Filters) => (v: string) => setF((old) => ({ ...old, [k]: v }));
  const [items, setItems] = useState<Entry[] | undefined>();
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<Error | undefined>();
  const [searchedQuery, setSearchedQuery] = useState('');
  const [busy, setBusy] = useState(false);
  const [live, setLive] = useState(false);
  const [liveState, setLiveState] = useState('');
  const source = useRef<EventSource | null>(null);

  async function search(more = false): Promise<boolean> {
    setBusy(true);
    setError(undefined);
    setSearchedQuery(f.query);
    try {
      const page = await api('get', '/api/observe/logs', {
        query: {
          ...filterQuery(f, props.project?.id),
          from: since(f.range),
          limit: 100,
          ...(more && cursor ? { cursor } : {}),
        } as never,
      });
      setItems((old) => (more ? [...(old ?? []), ...page.items] : page.items));
      setCursor(page.next_cursor);
      return true;
    } catch (err) {
      setError(err as Error);
      if (!more) setItems(undefined);
      return false;
    } finally {
      setBusy(false);
    }
  }

  // The first search runs on arrival (and when the project changes).
  useEffect(() => {
    search();
  }, [props.project?.id]);

  function stopTail() {
    source.current?.close();
    source.current = null;
    setLive(false);
    setLiveState('');
  }
  useEffect(() => () => source.current?.close(), []);

  async function startTail() {
    // The search checks the filters and the query first (an EventSource cannot read a 400's body).
    if (!(await search())) return;
    const qs = new URLSearchParams(filterQuery(f, props.project?.id));
    const es = new EventSource(`/api/observe/logs/tail?${qs}`);
    source.current = es;
    setLive(true);
    setLiveState('connecting');
    es.addEventListener('ready', () => setLiveState('live'));
    es.addEventListener('log', (ev) => {
      const entry = JSON.parse((ev as MessageEvent<string>).data) as Entry;
      setItems((old) => [entry, ...(old ?? [])].slice(0, LIVE_MAX));
    });
    es.addEventListener('dropped', () => setLiveState('dropped (too slow); toggle to resume'));
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) setLiveState('disconnected');
      else setLiveState('reconnecting');
    };
  }

  return (
    <section aria-labelledby="logs-h">
      <h2 id="logs-h">Logs</h2>
      <form
        class="filters obs-filters"
        aria-label="Log filters"
        onSubmit={(e) => {
          e.preventDefault();
          if (live) stopTail();
          search();
        }}
      >
        {props.project ? null : <ProjectPicker value={f.project} onChange={set('project')} />}
        <Field label="Service" value={f.service} onInput={set('service')} />
        <Select
          label="Level at least"
          value={f.level}
          onChange={set('level')}
          options={[['', 'Any level'], ...LEVELS.map((l): [string, string] => [l, l])]}
        />
        <Field label="Session" value={f.session} onInput={set('session')} placeholder="session id" />
        <Field label="Trace" value={f.trace} onInput={set('trace')} placeholder="32 hex characters" />
        <Select label="Time range" value={f.range} onChange={set('range')} options={RANGES} />
        <div class="field obs-query">
          <label for="log-query">Query</label>
          <textarea
            id="log-query"
            rows={2}
            class="mono"
            value={f.query}
            placeholder={'{level>="warn", service=~"api|web", message=~".*timeout.*"}'}
            aria-describedby="log-query-hint"
            onInput={(e) => set('query')(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                e.currentTarget.form?.requestSubmit();
              }
            }}
          />
          <small id="log-query-hint" class="muted">
            The observe query language (docs/observe-query.md); Ctrl+Enter searches.
          </small>
        </div>
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Search
          </button>
          <button
            type="button"
            aria-pressed={live}
            onClick={() => (live ? stopTail() : startTail())}
            class={live ? 'live-on' : undefined}
          >
            Live tail
          </button>
          {live ? (
            <span class="muted" role="status">
              Live tail: {liveState}
            </span>
          ) : null}
        </div>
      </form>
      {error ? <QueryErrorView error={error} query={searchedQuery} /> : null}
      {items === undefined && !error ? (
        <p class="muted" role="status" aria-live="polite">
          Loading…
        </p>
      ) : null}
      {items && items.length === 0 ? (
        <p class="empty">{live ? 'Waiting for new log entries…' : 'No log entries match.'}</p>
      ) : null}
      {items && items.length > 0 ? <LogTable items={items} base={props.base} /> : null}
      {cursor && !live ? (
        <button type="button" disabled={busy} onClick={() => search(true)}>
          Older entries
        </button>
      ) : null}
    </section>
  );
}

export function LogTable({ items, base, label }: { items: Entry[]; base: string; label?: string }) {
  return (
    <div class="scroll-x">
      <table class="table logs" aria-label={label ?? 'Log entries'}>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Level</th>
            <th scope="col">Service</th>
            <th scope="col">Message</th>
            <th scope="col">Trace</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.id}>
              <td class="mono nowrap">
                <time dateTime={e.timestamp}>{clock(e.timestamp)}</time>
              </td>
              <td>
                <span class={levelClass(e.level)}>{e.level}</span>
              </td>
              <td>{e.service}</td>
              <td class="msg">
                <details>
                  <summary class="mono">{e.message}</summary>
                  <Attributes attrs={e.attributes} label={`Attributes of the entry at ${e.timestamp}`} />
                  <p class="muted small">
                    span {e.span_id ?? '—'} · session {e.session_id ?? '—'} · id {e.id}
                  </p>
                </details>
              </td>
              <td>
                {e.trace_id ? (
                  <Link href={`${base}/traces/${e.trace_id}`} title={`Trace ${e.trace_id}`}>
                    {e.trace_id.slice(0, 8)}…
                  </Link>
                ) : (
                  <span class="muted">—</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
