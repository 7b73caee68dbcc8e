/** Traces: the list (filters), and one trace as a waterfall with span details and its logs. */
import { useState } from 'preact/hooks';
import { api, type S } from '../../api/client';
import { Field, Link, Select, Time, useApi, View } from '../../ui';
import { LogTable } from './logs';
import { Attributes, clock, fmtMs, type ObserveContext, ProjectPicker, RANGES, since } from './shared';

type Span = S['Span'];

export function Traces(props: ObserveContext) {
  if (props.item) return <TraceView {...props} traceId={props.item} />;
  return <TraceList {...props} />;
}

function TraceList(props: ObserveContext) {
  const [project, setProject] = useState('');
  const [service, setService] = useState('');
  const [minMs, setMinMs] = useState('');
  const [errors, setErrors] = useState('');
  const [range, setRange] = useState('86400');
  const [applied, setApplied] = useState({ project, service, minMs, errors, range });
  const pid = props.project?.id ?? applied.project;
  const traces = useApi(
    () =>
      api('get', '/api/observe/traces', {
        query: {
          ...(pid ? { project_id: pid } : {}),
          ...(applied.service ? { service: applied.service } : {}),
          ...(applied.minMs ? { min_duration_ms: Number(applied.minMs) } : {}),
          ...(applied.errors ? { errors: 'true' } : {}),
          from: since(applied.range),
          limit: 100,
        } as never,
      }),
    [pid, applied],
  );
  return (
    <section aria-labelledby="traces-h">
      <h2 id="traces-h">Traces</h2>
      <form
        class="filters obs-filters"
        aria-label="Trace filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ project, service, minMs, errors, range });
        }}
      >
        {props.project ? null : <ProjectPicker value={project} onChange={setProject} />}
        <Field label="Service" value={service} onInput={setService} />
        <Field label="Slower than (ms)" value={minMs} onInput={setMinMs} type="number" />
        <Select
          label="Status"
          value={errors}
          onChange={setErrors}
          options={[
            ['', 'All traces'],
            ['true', 'With errors'],
          ]}
        />
        <Select label="Time range" value={range} onChange={setRange} options={RANGES} />
        <div class="actions">
          <button type="submit" class="primary">
            Search
          </button>
        </div>
      </form>
      <View state={traces} empty={(d) => d.items.length === 0} emptyText="No traces in this range.">
        {(d) => (
          <table class="table" aria-label="Traces">
            <thead>
              <tr>
                <th scope="col">Root span</th>
                <th scope="col">Service</th>
                <th scope="col">Duration</th>
                <th scope="col">Spans</th>
                <th scope="col">Errors</th>
                <th scope="col">Started</th>
              </tr>
            </thead>
            <tbody>
              {d.items.map((t) => (
                <tr key={t.trace_id}>
                  <td>
                    <Link href={`${props.base}/traces/${t.trace_id}`}>{t.root_name ?? t.trace_id}</Link>
                  </td>
                  <td>{t.root_service ?? '—'}</td>
                  <td class="mono">{fmtMs(t.duration_ms)}</td>
                  <td>{t.span_count}</td>
                  <td>{t.error_count > 0 ? <span class="badge bad">{t.error_count}</span> : '0'}</td>
                  <td>
                    <Time at={t.start_time} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </View>
    </section>
  );
}

function TraceView(props: ObserveContext & { traceId: string }) {
  const trace = useApi(
    () => api('get', '/api/observe/traces/{traceId}', { path: { traceId: props.traceId } }),
    [props.traceId],
  );
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <section aria-labelledby="trace-h">
      <p class="crumbs">
        <Link href={`${props.base}/traces`}>Traces</Link> /
      </p>
      <h2 id="trace-h" class="mono">
        Trace {props.traceId}
      </h2>
      <View state={trace}>
        {(t) => {
          const span = t.spans.find((s) => s.span_id === selected) ?? null;
          return (
            <>
              <p class="muted">
                {t.span_count} spans · {fmtMs(t.duration_ms)} · started {clock(t.start_time)}
                {t.error_count > 0 ? <span class="badge bad"> {t.error_count} errors</span> : null}
                {t.session_id ? (
                  <>
                    {' '}
                    · <Link href={`${props.base}/timeline/${t.session_id}`}>session timeline</Link>
                  </>
                ) : null}
              </p>
              <Waterfall spans={t.spans} total={t.duration_ms} selected={selected} onSelect={setSelected} />
              {span ? <SpanDetails span={span} /> : null}
              <h3>Logs of this trace</h3>
              {t.logs.length === 0 ? (
                <p class="empty">No log entries carry this trace.</p>
              ) : (
                <LogTable items={t.logs} base={props.base} label="Logs of this trace" />
              )}
              <p>
                <Link href={`${props.base}/logs?trace_id=${t.trace_id}`}>Search these logs</Link>
              </p>
            </>
          );
        }}
      </View>
    </section>
  );
}

function Waterfall(props: {
  spans: Span[];
  total: number;
  selected: string | null;
  onSelect: (id: string | null) => void;
}) {
  const total = props.total > 0 ? props.total : 1;
  return (
    <table class="waterfall" aria-label="Waterfall">
      <thead>
        <tr class="wf-head">
          <th scope="col">Span</th>
          <th scope="col">Timing (0 – {fmtMs(props.total)})</th>
        </tr>
      </thead>
      <tbody>
        {props.spans.map((s) => {
          const left = Math.min((s.offset_ms / total) * 100, 99.6);
          const width = Math.min(Math.max(0.4, (s.duration_ms / total) * 100), 100 - left);
          const isError = /error/i.test(s.status_code);
          return (
            <tr key={s.span_id}>
              <td class="wf-name" style={{ paddingLeft: `${8 + s.depth * 16}px` }}>
                <button
                  type="button"
                  class="link"
                  aria-pressed={props.selected === s.span_id}
                  onClick={() => props.onSelect(props.selected === s.span_id ? null : s.span_id)}
                >
                  {s.name}
                </button>{' '}
                <span class="muted small">{s.service ?? ''}</span>
              </td>
              <td>
                <div class="wf-track">
                  <span
                    class={`wf-bar${isError ? ' err' : ''}`}
                    style={{ left: `${left}%`, width: `${width}%` }}
                  />
                  <span class="wf-label mono">
                    {fmtMs(s.duration_ms)} @ {fmtMs(s.offset_ms)}
                  </span>
                </div>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function SpanDetails({ span }: { span: Span }) {
  return (
    <section class="card span-details" aria-labelledby="span-h">
      <h3 id="span-h">Span {span.name}</h3>
      <dl class="kv">
        <dt>Span id</dt>
        <dd class="mono">{span.span_id}</dd>
        <dt>Parent</dt>
        <dd class="mono">{span.parent_span_id ?? '—'}</dd>
        <dt>Kind</dt>
        <dd>{span.kind}</dd>
        <dt>Service</dt>
        <dd>{span.service ?? '—'}</dd>
        <dt>Status</dt>
        <dd>
          {span.status_code}
          {span.status_message ? ` — ${span.status_message}` : ''}
        </dd>
        <dt>Start</dt>
        <dd>{clock(span.start_time)}</dd>
        <dt>Duration</dt>
        <dd>{fmtMs(span.duration_ms)}</dd>
      </dl>
      <h4>Attributes</h4>
      <Attributes attrs={span.attributes} label={`Attributes of span ${span.name}`} />
      {span.events.length > 0 ? (
        <>
          <h4>Events</h4>
          <pre class="mono small">{JSON.stringify(span.events, null, 2)}</pre>
        </>
      ) : null}
    </section>
  );
}
