/**
 * Metrics: a name picker, label filters, aggregation, step and group-by choices, and a line chart
 * with one series per label group (uplot, in this lazily loaded module with its CSS).
 */
import { useState } from 'preact/hooks';
import { api, type S } from '../../api/client';
import { Field, Select, useApi, View } from '../../ui';
import { Chart, COLOURS } from './chart';
import { type ObserveContext, ProjectPicker, RANGES, since } from './shared';

const AGGS = ['avg', 'sum', 'min', 'max', 'count', 'rate', 'p50', 'p90', 'p95', 'p99'] as const;
const STEPS: [string, string][] = [
  ['', 'Automatic'],
  ['10', '10 s'],
  ['60', '1 min'],
  ['300', '5 min'],
  ['3600', '1 h'],
];

interface Query {
  name: string;
  labels: Record<string, string>;
  extra: string;
  agg: string;
  step: string;
  range: string;
  groupBy: string;
}

function autoStep(range: string): number {
  return Math.max(10, Math.ceil(Number(range) / 300));
}

export function Metrics(props: ObserveContext) {
  const [project, setProject] = useState('');
  const pid = props.project?.id ?? project;
  const names = useApi(
    () => api('get', '/api/observe/metrics/names', { query: (pid ? { project_id: pid } : {}) as never }),
    [pid],
  );
  const [q, setQ] = useState<Query>({
    name: '',
    labels: {},
    extra: '',
    agg: 'avg',
    step: '',
    range: '3600',
    groupBy: '',
  });
  const [applied, setApplied] = useState<Query | null>(null);
  const set = <K extends keyof Query>(k: K, v: Query[K]) => setQ((o) => ({ ...o, [k]: v }));
  return (
    <section aria-labelledby="metrics-h">
      <h2 id="metrics-h">Metrics</h2>
      {props.project ? null : <ProjectPicker value={project} onChange={setProject} />}
      <View
        state={names}
        empty={(d) => d.items.length === 0}
        emptyText="No metrics received yet. Send some with an OpenTelemetry exporter to /v1/metrics."
      >
        {(d) => {
          const metric = d.items.find((m) => m.name === q.name);
          const labelKeys = metric ? Object.keys(metric.labels).sort() : [];
          return (
            <>
              <form
                class="filters obs-filters"
                aria-label="Metric query"
                onSubmit={(e) => {
                  e.preventDefault();
                  if (q.name) setApplied({ ...q });
                }}
              >
                <Select
                  label="Metric"
                  value={q.name}
                  onChange={(v) => setQ((o) => ({ ...o, name: v, labels: {}, groupBy: '' }))}
                  options={[
                    ['', 'Choose a metric…'],
                    ...d.items.map((m): [string, string] => [
                      m.name,
                      `${m.name} (${m.type}${m.unit ? `, ${m.unit}` : ''})`,
                    ]),
                  ]}
                />
                {labelKeys.map((k) => (
                  <Select
                    key={k}
                    label={`Label ${k}`}
                    value={q.labels[k] ?? ''}
                    onChange={(v) => set('labels', { ...q.labels, [k]: v })}
                    options={[['', 'any'], ...(metric?.labels[k] ?? []).map((v): [string, string] => [v, v])]}
                  />
                ))}
                <Field
                  label="More matchers"
                  value={q.extra}
                  onInput={(v) => set('extra', v)}
                  placeholder='route=~"/api/.*", status!=200'
                />
                <Select
                  label="Aggregation"
                  value={q.agg}
                  onChange={(v) => set('agg', v)}
                  options={AGGS.map((a): [string, string] => [a, a])}
                />
                <Select label="Step" value={q.step} onChange={(v) => set('step', v)} options={STEPS} />
                <Select
                  label="Group by"
                  value={q.groupBy}
                  onChange={(v) => set('groupBy', v)}
                  options={[['', 'No grouping'], ...labelKeys.map((k): [string, string] => [k, k])]}
                />
                <Select
                  label="Time range"
                  value={q.range}
                  onChange={(v) => set('range', v)}
                  options={RANGES}
                />
                <div class="actions">
                  <button type="submit" class="primary" disabled={!q.name}>
                    Chart
                  </button>
                </div>
              </form>
              {metric?.description ? <p class="muted">{metric.description}</p> : null}
              {applied ? (
                <MetricChart q={applied} projectId={pid} />
              ) : (
                <p class="empty">Choose a metric and press Chart.</p>
              )}
            </>
          );
        }}
      </View>
    </section>
  );
}

/** `a=b, c!~"x"` → matchers the API takes (`key=value`, quotes optional). */
function parseMatchers(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => s.replace(/^([^=!~]+)(=~|!~|!=|=)\s*"(.*)"$/, '$1$2$3'));
}

function MetricChart({ q, projectId }: { q: Query; projectId: string }) {
  const match = [
    ...Object.entries(q.labels)
      .filter(([, v]) => v !== '')
      .map(([k, v]) => `${k}=${v}`),
    ...parseMatchers(q.extra),
  ];
  const step = q.step ? Number(q.step) : autoStep(q.range);
  const result = useApi(
    () =>
      api('get', '/api/observe/metrics', {
        query: {
          name: q.name,
          ...(projectId ? { project_id: projectId } : {}),
          ...(match.length ? { match } : {}),
          from: since(q.range),
          step,
          agg: q.agg,
          ...(q.groupBy ? { group_by: q.groupBy } : {}),
        } as never,
      }),
    [JSON.stringify(q), projectId],
  );
  return (
    <View
      state={result}
      empty={(r) => r.series.every((s) => s.points.length === 0)}
      emptyText="No samples in this range."
    >
      {(r) => <ChartOf result={r} />}
    </View>
  );
}

function ChartOf({ result }: { result: S['MetricResult'] }) {
  const names = result.series.map((s) => seriesName(s.labels));
  const title = `${result.name} — ${result.aggregation} per ${result.step_seconds} s${result.unit ? ` (${result.unit})` : ''}`;
  return (
    <figure class="metric-figure">
      <Chart
        title={title}
        series={result.series.map((s, i) => ({
          label: names[i] ?? '',
          points: s.points.map((p) => [Date.parse(p.t) / 1000, p.v] as [number, number]),
        }))}
      />
      <figcaption>
        {title}: {result.series.length} series.
        <ul class="legend-list">
          {result.series.map((s, i) => {
            const last = s.points[s.points.length - 1];
            return (
              <li key={names[i]}>
                <span class="swatch" style={{ background: COLOURS[i % COLOURS.length] }} aria-hidden="true" />{' '}
                {names[i]}: last {last ? last.v.toLocaleString() : '—'}
              </li>
            );
          })}
        </ul>
      </figcaption>
    </figure>
  );
}

function seriesName(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(', ') : 'all';
}
