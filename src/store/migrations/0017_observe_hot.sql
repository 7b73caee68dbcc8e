-- Observe hot tier: the telemetry tables of 0007 become partitioned by UTC day (declarative range
-- partitioning), so the cold rotation moves a whole day to Parquet and drops its partition instead
-- of deleting rows one by one. Nothing wrote these tables before this migration (they are recreated
-- empty). A partitioned table's primary and unique keys must contain the partition key, hence
-- (timestamp, id) and (trace_id, span_id, start_time).
--
-- Partitions are created on demand by observe_ensure_partition(parent, day), called by the ingest
-- before it writes a day it has not seen (an advisory lock serialises instances creating the same one).
--
-- Text search (`q`) uses pg_trgm (shipped with the bundled PostgreSQL and with Debian's): a trigram
-- GIN index answers ILIKE '%…%' without a sequential scan. The extension lives in `public` so every
-- schema (the tests isolate themselves in schemas) finds its operator class under one name.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

ALTER TABLE log_entries RENAME TO log_entries_unpartitioned;
DROP TABLE log_entries_unpartitioned;
CREATE TABLE log_entries (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  timestamp timestamptz NOT NULL,
  trace_id text NULL,
  span_id text NULL,
  project_id uuid NULL,
  session_id uuid NULL,
  user_id uuid NULL,
  service text NOT NULL DEFAULT '',
  level text NOT NULL DEFAULT 'info'
    CONSTRAINT log_entries_level_check CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal')),
  message text NOT NULL DEFAULT '',
  -- Record attributes over resource attributes (a record's own key wins), flat string/number/bool.
  attributes jsonb NOT NULL DEFAULT '{}',
  source_namespace text NULL,
  source_pod text NULL,
  source_container text NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (timestamp, id)
) PARTITION BY RANGE (timestamp);
CREATE INDEX log_entries_timestamp_idx ON log_entries (timestamp DESC, id DESC);
CREATE INDEX log_entries_project_timestamp_idx ON log_entries (project_id, timestamp DESC, id DESC);
CREATE INDEX log_entries_project_level_timestamp_idx ON log_entries (project_id, level, timestamp DESC);
CREATE INDEX log_entries_service_timestamp_idx ON log_entries (service, timestamp DESC);
CREATE INDEX log_entries_session_timestamp_idx ON log_entries (session_id, timestamp) WHERE session_id IS NOT NULL;
CREATE INDEX log_entries_trace_id_idx ON log_entries (trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX log_entries_message_trgm_idx ON log_entries USING gin (message public.gin_trgm_ops);

ALTER TABLE spans RENAME TO spans_unpartitioned;
DROP TABLE spans_unpartitioned;
CREATE TABLE spans (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  trace_id text NOT NULL CONSTRAINT spans_trace_id_check CHECK (trace_id ~ '^[0-9a-f]{32}$'),
  span_id text NOT NULL CONSTRAINT spans_span_id_check CHECK (span_id ~ '^[0-9a-f]{16}$'),
  parent_span_id text NULL CONSTRAINT spans_parent_span_id_check CHECK (parent_span_id ~ '^[0-9a-f]{16}$'),
  name text NOT NULL,
  kind text NOT NULL DEFAULT 'internal' CONSTRAINT spans_kind_check CHECK (
    kind IN ('unspecified', 'internal', 'server', 'client', 'producer', 'consumer')
  ),
  status_code text NOT NULL DEFAULT 'unset' CONSTRAINT spans_status_code_check CHECK (status_code IN ('unset', 'ok', 'error')),
  status_message text NULL,
  service text NULL,
  project_id uuid NULL,
  session_id uuid NULL,
  user_id uuid NULL,
  start_time timestamptz NOT NULL,
  end_time timestamptz NOT NULL,
  duration_ms double precision NOT NULL DEFAULT 0,
  attributes jsonb NOT NULL DEFAULT '{}',
  resource_attributes jsonb NOT NULL DEFAULT '{}',
  events jsonb NOT NULL DEFAULT '[]',
  links jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (start_time, id),
  -- Exporters retry: a re-sent span (same ids, same start) is ignored with ON CONFLICT DO NOTHING.
  CONSTRAINT spans_trace_span_key UNIQUE (trace_id, span_id, start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX spans_start_time_idx ON spans (start_time DESC);
CREATE INDEX spans_project_start_idx ON spans (project_id, start_time DESC);
CREATE INDEX spans_session_start_idx ON spans (session_id, start_time) WHERE session_id IS NOT NULL;
CREATE INDEX spans_service_start_idx ON spans (service, start_time DESC);
CREATE INDEX spans_trace_id_idx ON spans (trace_id);

ALTER TABLE metric_samples RENAME TO metric_samples_unpartitioned;
DROP TABLE metric_samples_unpartitioned;
CREATE TABLE metric_samples (
  series_id uuid NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
  timestamp timestamptz NOT NULL,
  value double precision NULL,
  count bigint NULL,
  sum double precision NULL,
  buckets jsonb NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (series_id, timestamp)
) PARTITION BY RANGE (timestamp);
CREATE INDEX metric_samples_timestamp_idx ON metric_samples (timestamp);

-- Creates the UTC-day partition `<parent>_pYYYYMMDD` of log_entries, spans or metric_samples
-- when it does not exist yet.
CREATE FUNCTION observe_ensure_partition(parent text, day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  part text := parent || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
  IF parent NOT IN ('log_entries', 'spans', 'metric_samples') THEN
    RAISE EXCEPTION 'not an observe table: %', parent;
  END IF;
  IF to_regclass(part) IS NOT NULL THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('observe.partition.' || part));
  IF to_regclass(part) IS NULL THEN
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
      part, parent,
      (day::timestamp AT TIME ZONE 'UTC'),
      ((day + 1)::timestamp AT TIME ZONE 'UTC')
    );
  END IF;
END;
$$;
