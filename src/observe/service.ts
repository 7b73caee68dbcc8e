import type { LogSink } from '../core/log-sink.js';
import type { Page } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { countColdLogs, mergeLogs, searchColdLogs } from './cold.js';
import type { ObserveIngest } from './ingest.js';
import { listMetricNames, type MetricQuery, queryMetric } from './metrics.js';
import {
  countLogs,
  findLogRows,
  type LogFilter,
  type LogSummary,
  type LogView,
  logPageOf,
  summaryOf,
} from './queries.js';
import { logQueryWhere } from './query-lang/index.js';
import { liveFilter } from './tail/filter.js';
import { sessionProject, sessionTimeline } from './timeline.js';
import { getTrace, listTraces, type ProjectReader, type TraceFilter } from './traces.js';

/** The observe module's public service: the LogSink every producer writes through, and the queries. */
export class ObserveService {
  /** The one log-writing interface (core/log-sink.ts) for pipeline, deployer, agents, the platform log. */
  readonly logs: LogSink;

  constructor(
    private readonly db: Db,
    private readonly objects: ObjectStore,
    readonly ingest: ObserveIngest,
  ) {
    this.logs = ingest;
  }

  /**
   * A `query` in the observe query language, twice: as SQL for the hot tier and as an in-memory
   * matcher for the Parquet rows of the cold tier (400 with the position when it does not parse).
   */
  private async logQuery(query: string | undefined) {
    const where = logQueryWhere(query);
    if (!where) return undefined;
    return { where, matches: await liveFilter(this.db, {}, query) };
  }

  /**
   * The log search over both tiers, newest first: the hot rows and the cold rows (Parquet files the
   * time range reaches) merged in order; `query` filters both.
   */
  async searchLogs(
    filter: LogFilter,
    page: { limit: number; cursor?: string | undefined },
    query?: string,
  ): Promise<Page<LogView>> {
    const compiled = await this.logQuery(query);
    const fetch = { limit: page.limit + 1, cursor: page.cursor };
    const hot = await findLogRows(this.db, filter, fetch, compiled?.where);
    // A full page of hot rows: only cold rows at least as new as its oldest can still enter it, and
    // with the usual "newest first, no time range" search that is none (no Parquet file is read).
    const oldest = hot.length >= fetch.limit ? hot[fetch.limit - 1] : undefined;
    const floor = oldest ? new Date(Date.parse(oldest.timestamp)) : undefined;
    const coldFilter = floor && !(filter.from && filter.from > floor) ? { ...filter, from: floor } : filter;
    const cold = await searchColdLogs(this.db, this.objects, coldFilter, fetch, {
      matches: compiled?.matches,
    });
    if (cold.length === 0) return logPageOf(hot, page.limit);
    return logPageOf(mergeLogs(hot, cold, fetch.limit), page.limit);
  }

  /** Counts by level and service over both tiers. */
  async summarizeLogs(filter: LogFilter, query?: string): Promise<LogSummary> {
    const compiled = await this.logQuery(query);
    const [hot, cold] = await Promise.all([
      countLogs(this.db, filter, compiled?.where),
      countColdLogs(this.db, this.objects, filter, compiled?.matches),
    ]);
    return summaryOf([...hot, ...cold]);
  }

  listTraces(filter: TraceFilter, page: { limit: number; cursor?: string | undefined }) {
    return listTraces(this.db, filter, page);
  }

  /** One trace, with only the records of the projects `canRead` allows (null: none of them). */
  getTrace(traceId: string, canRead: ProjectReader) {
    return getTrace(this.db, this.objects, traceId, 200, canRead);
  }

  metricNames(projectId: string | null | undefined) {
    return listMetricNames(this.db, projectId);
  }

  queryMetric(q: MetricQuery) {
    return queryMetric(this.db, this.objects, q);
  }

  sessionProject(sessionId: string) {
    return sessionProject(this.db, sessionId);
  }

  sessionTimeline(sessionId: string, projectId: string | null, after: string | undefined, limit: number) {
    return sessionTimeline(this.db, this.objects, sessionId, projectId, after, limit);
  }

  /** Writes everything buffered (tests, shutdown). */
  flush(): Promise<void> {
    return Promise.all([
      this.ingest.buffers.logs.drain(),
      this.ingest.buffers.traces.drain(),
      this.ingest.buffers.metrics.drain(),
    ]).then(() => undefined);
  }
}
