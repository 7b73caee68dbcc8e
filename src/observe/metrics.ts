import { type RawBuilder, sql } from 'kysely';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { findColdSamples } from './cold.js';
import type { MetricAggregation } from './schemas.js';

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface MetricNameView {
  name: string;
  type: string;
  unit: string;
  description: string;
  series_count: number;
  /** Label names with up to 20 of their values. */
  labels: Record<string, string[]>;
}

const MAX_SERIES = 5000;
const MAX_SAMPLES = 200_000;

function projectCondition(projectId: string | null | undefined): RawBuilder<boolean> {
  if (projectId === undefined) return sql<boolean>`true`;
  return projectId === null
    ? sql<boolean>`project_id is null`
    : sql<boolean>`project_id = ${projectId}::uuid`;
}

export async function listMetricNames(
  db: Db,
  projectId: string | null | undefined,
): Promise<MetricNameView[]> {
  const r = await sql<{
    name: string;
    type: string;
    unit: string;
    description: string;
    labels: Record<string, string>;
  }>`
    select name, type, unit, description, labels from metric_series where ${projectCondition(projectId)}
    order by name limit ${MAX_SERIES}`.execute(db);
  const byName = new Map<string, MetricNameView & { values: Map<string, Set<string>> }>();
  for (const s of r.rows) {
    const view = byName.get(s.name) ?? {
      name: s.name,
      type: s.type,
      unit: s.unit,
      description: s.description,
      series_count: 0,
      labels: {},
      values: new Map<string, Set<string>>(),
    };
    view.series_count += 1;
    for (const [k, v] of Object.entries(s.labels)) {
      const set = view.values.get(k) ?? new Set<string>();
      if (set.size < 20) set.add(v);
      view.values.set(k, set);
    }
    byName.set(s.name, view);
  }
  return [...byName.values()].map(({ values, ...view }) => ({
    ...view,
    labels: Object.fromEntries([...values.entries()].map(([k, set]) => [k, [...set].sort()])),
  }));
}

export interface MetricQuery {
  name: string;
  projectId?: string | null;
  matchers: [string, MatchOp, string][];
  from: Date;
  to: Date;
  stepSeconds: number;
  agg: MetricAggregation;
  groupBy: string[];
}

export interface MetricSeriesView {
  labels: Record<string, string>;
  points: { t: string; v: number }[];
}

export interface MetricResultView {
  name: string;
  type: string;
  unit: string;
  aggregation: MetricAggregation;
  step_seconds: number;
  series: MetricSeriesView[];
}

interface Sample {
  t: number;
  value: number | null;
  count: number | null;
  buckets: { bounds?: number[]; counts?: number[] } | null;
}

function matcherCondition([key, op, value]: [string, MatchOp, string]): RawBuilder<boolean> {
  const label = sql`(labels ->> ${key})`;
  if (op === '=') return sql<boolean>`coalesce(${label}, '') = ${value}`;
  if (op === '!=') return sql<boolean>`coalesce(${label}, '') <> ${value}`;
  if (op === '=~') return sql<boolean>`coalesce(${label}, '') ~ ${`^(?:${value})$`}`;
  return sql<boolean>`coalesce(${label}, '') !~ ${`^(?:${value})$`}`;
}

/** Prometheus-style histogram_quantile: linear interpolation inside the bucket holding the rank. */
export function histogramQuantile(q: number, bounds: number[], counts: number[]): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (cumulative + c >= rank && c > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1] ?? null;
      const upper = bounds[i] as number;
      const lower = i === 0 ? Math.min(0, upper) : (bounds[i - 1] as number);
      return lower + (upper - lower) * ((rank - cumulative) / c);
    }
    cumulative += c;
  }
  return bounds[bounds.length - 1] ?? null;
}

const QUANTILES: Record<string, number> = { p50: 0.5, p90: 0.9, p95: 0.95, p99: 0.99 };

function subtractCounts(a: number[], b: number[] | undefined): number[] {
  if (!b || b.length !== a.length) return a;
  const d = a.map((v, i) => v - (b[i] ?? 0));
  // A counter reset: the new running totals are the increase.
  return d.some((v) => v < 0) ? a : d;
}

interface BucketAcc {
  sum: number;
  count: number;
  min: number;
  max: number;
  rate: number;
  histBounds?: number[];
  histCounts?: number[];
}

export async function queryMetric(
  db: Db,
  objects: ObjectStore,
  q: MetricQuery,
): Promise<MetricResultView | null> {
  const conditions = [
    sql<boolean>`name = ${q.name}`,
    projectCondition(q.projectId),
    ...q.matchers.map(matcherCondition),
  ];
  const series = await sql<{
    id: string;
    type: string;
    unit: string;
    labels: Record<string, string>;
    temporality: string | null;
  }>`
    select id, type, unit, labels, temporality from metric_series where ${sql.join(conditions, sql` and `)}
    limit ${MAX_SERIES}`.execute(db);
  if (series.rows.length === 0) return null;
  const samples = await sql<{
    series_id: string;
    t: number;
    value: number | null;
    count: number | null;
    buckets: Sample['buckets'];
  }>`
    select series_id, extract(epoch from timestamp) * 1000 as t, value, count, buckets from metric_samples
    where series_id = any(${series.rows.map((s) => s.id)}::uuid[]) and timestamp >= ${q.from} and timestamp < ${q.to}
    order by series_id, timestamp limit ${MAX_SAMPLES}`.execute(db);
  // Samples older than the hot window are in the cold tier's Parquet files (a sample is in one tier).
  const cold =
    samples.rows.length < MAX_SAMPLES
      ? await findColdSamples(
          db,
          objects,
          new Set(series.rows.map((s) => s.id)),
          { from: q.from, to: q.to },
          MAX_SAMPLES - samples.rows.length,
        )
      : [];
  const bySeries = new Map<string, Sample[]>();
  for (const s of [...cold, ...samples.rows]) {
    const list = bySeries.get(s.series_id) ?? [];
    list.push({ t: Number(s.t), value: s.value, count: s.count, buckets: s.buckets });
    bySeries.set(s.series_id, list);
  }
  if (cold.length > 0) for (const list of bySeries.values()) list.sort((a, b) => a.t - b.t);
  const stepMs = q.stepSeconds * 1000;
  const from = q.from.getTime();
  const groups = new Map<string, { labels: Record<string, string>; buckets: Map<number, BucketAcc> }>();
  const quantile = QUANTILES[q.agg];
  for (const s of series.rows) {
    const list = bySeries.get(s.id);
    if (!list) continue;
    const labels =
      q.groupBy.length === 0 ? {} : Object.fromEntries(q.groupBy.map((k) => [k, s.labels[k] ?? '']));
    const key = JSON.stringify(labels);
    const group = groups.get(key) ?? { labels, buckets: new Map<number, BucketAcc>() };
    groups.set(key, group);
    const delta = s.temporality === 'delta';
    let previous: Sample | undefined;
    // Per bucket of this series: the raw samples, then the increase since the previous bucket's last one.
    const perBucket = new Map<number, Sample[]>();
    for (const sample of list) {
      const b = Math.floor((sample.t - from) / stepMs);
      const arr = perBucket.get(b) ?? [];
      arr.push(sample);
      perBucket.set(b, arr);
    }
    for (const [b, arr] of [...perBucket.entries()].sort((x, y) => x[0] - y[0])) {
      const acc = group.buckets.get(b) ?? { sum: 0, count: 0, min: Infinity, max: -Infinity, rate: 0 };
      for (const sample of arr) {
        if (sample.value === null) continue;
        acc.sum += sample.value;
        acc.count += 1;
        acc.min = Math.min(acc.min, sample.value);
        acc.max = Math.max(acc.max, sample.value);
      }
      const last = arr[arr.length - 1] as Sample;
      const base = previous ?? (arr.length > 1 ? arr[0] : undefined);
      if (q.agg === 'rate') {
        let increase: number;
        if (delta) increase = arr.reduce((a, x) => a + (x.value ?? 0), 0);
        else {
          const d = (last.value ?? 0) - (base?.value ?? 0);
          increase = base ? (d < 0 ? (last.value ?? 0) : d) : 0;
        }
        acc.rate += increase / q.stepSeconds;
      }
      if (quantile !== undefined && last.buckets?.counts && last.buckets.bounds) {
        let counts: number[];
        if (delta) {
          counts = last.buckets.counts.map((_, i) =>
            arr.reduce((a, x) => a + (x.buckets?.counts?.[i] ?? 0), 0),
          );
        } else {
          // Running totals: the increase since the previous bucket; in the first bucket, everything counted so far.
          counts = previous
            ? subtractCounts(last.buckets.counts, previous.buckets?.counts)
            : last.buckets.counts;
        }
        if (!acc.histBounds) {
          acc.histBounds = last.buckets.bounds;
          acc.histCounts = counts;
        } else if (acc.histBounds.length === last.buckets.bounds.length) {
          acc.histCounts = (acc.histCounts ?? []).map((v, i) => v + (counts[i] ?? 0));
        }
      }
      group.buckets.set(b, acc);
      previous = last;
    }
  }
  const result: MetricSeriesView[] = [];
  for (const g of groups.values()) {
    const points: { t: string; v: number }[] = [];
    for (const [b, acc] of [...g.buckets.entries()].sort((x, y) => x[0] - y[0])) {
      let v: number | null;
      if (quantile !== undefined)
        v = acc.histBounds ? histogramQuantile(quantile, acc.histBounds, acc.histCounts ?? []) : null;
      else if (q.agg === 'avg') v = acc.count ? acc.sum / acc.count : null;
      else if (q.agg === 'sum') v = acc.sum;
      else if (q.agg === 'min') v = acc.count ? acc.min : null;
      else if (q.agg === 'max') v = acc.count ? acc.max : null;
      else if (q.agg === 'count') v = acc.count;
      else v = acc.rate;
      if (v !== null && Number.isFinite(v)) points.push({ t: new Date(from + b * stepMs).toISOString(), v });
    }
    result.push({ labels: g.labels, points });
  }
  const first = series.rows[0] as (typeof series.rows)[number];
  return {
    name: q.name,
    type: first.type,
    unit: first.unit,
    aggregation: q.agg,
    step_seconds: q.stepSeconds,
    series: result,
  };
}
