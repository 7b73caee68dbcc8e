import type { RawBuilder } from 'kysely';
import type { LogSink } from '../core/log-sink.js';
import type { Page } from '../core/pagination.js';
import type { Db } from '../store/db.js';
import type { ObserveIngest } from './ingest.js';
import { listMetricNames, type MetricQuery, queryMetric } from './metrics.js';
import { type LogFilter, type LogSummary, type LogView, searchLogs, summarizeLogs } from './queries.js';
import { sessionProject, sessionTimeline } from './timeline.js';
import { getTrace, listTraces, type TraceFilter, traceProject } from './traces.js';

/** The observe module's public service: the LogSink every producer writes through, and the queries. */
export class ObserveService {
  /** The one log-writing interface (core/log-sink.ts) for pipeline, deployer, agents, the platform log. */
  readonly logs: LogSink;

  constructor(
    private readonly db: Db,
    readonly ingest: ObserveIngest,
  ) {
    this.logs = ingest;
  }

  /** `extraWhere`: a further condition AND-ed in (the query language's compiled fragment). */
  searchLogs(
    filter: LogFilter,
    page: { limit: number; cursor?: string | undefined },
    extraWhere?: RawBuilder<boolean>,
  ): Promise<Page<LogView>> {
    return searchLogs(this.db, filter, page, extraWhere);
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
