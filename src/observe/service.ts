import type { RawBuilder } from 'kysely';
import type { LogSink } from '../core/log-sink.js';
import type { Page } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import type { ObjectStore } from '../store/objects/types.js';
import { newestFirst, searchColdLogs } from './cold.js';
import type { ObserveIngest } from './ingest.js';
import { listMetricNames, type MetricQuery, queryMetric } from './metrics.js';
import {
  findLogRows,
  type LogFilter,
  type LogSummary,
  type LogView,
  logPageOf,
  summarizeLogs,
} from './queries.js';
import { sessionProject, sessionTimeline } from './timeline.js';
import { getTrace, listTraces, type TraceFilter, traceProject } from './traces.js';

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
   * The log search over both tiers, newest first: the hot rows and the cold rows (Parquet files the
   * time range reaches) merged in order. `extraWhere` (the query language's compiled SQL fragment)
   * is AND-ed into the hot query; with it, the search covers the hot tier only (SQL cannot run over
   * the Parquet files here).
   */
  async searchLogs(
    filter: LogFilter,
    page: { limit: number; cursor?: string | undefined },
    extraWhere?: RawBuilder<boolean>,
  ): Promise<Page<LogView>> {
    const fetch = { limit: page.limit + 1, cursor: page.cursor };
    const hot = await findLogRows(this.db, filter, fetch, extraWhere);
    if (extraWhere) return logPageOf(hot, page.limit);
    const cold = await searchColdLogs(this.db, this.objects, filter, fetch);
    if (cold.length === 0) return logPageOf(hot, page.limit);
    return logPageOf([...hot, ...cold].sort(newestFirst).slice(0, fetch.limit), page.limit);
  }

  summarizeLogs(filter: LogFilter, extraWhere?: RawBuilder<boolean>): Promise<LogSummary> {
    return summarizeLogs(this.db, filter, extraWhere);
  }

  listTraces(filter: TraceFilter, page: { limit: number; cursor?: string | undefined }) {
    return listTraces(this.db, filter, page);
  }

  traceProject(traceId: string) {
    return traceProject(this.db, traceId);
  }

  getTrace(traceId: string) {
    return getTrace(this.db, traceId, 200);
  }

  metricNames(projectId: string | null | undefined) {
    return listMetricNames(this.db, projectId);
  }

  queryMetric(q: MetricQuery) {
    return queryMetric(this.db, q);
  }

  sessionProject(sessionId: string) {
    return sessionProject(this.db, sessionId);
  }

  sessionTimeline(sessionId: string, after: string | undefined, limit: number) {
    return sessionTimeline(this.db, sessionId, after, limit);
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
