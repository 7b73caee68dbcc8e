-- Observability hot store: traces, spans, logs, metrics, the Parquet cold-file catalog, alerts and
-- saved searches.
--
-- Telemetry rows (traces, spans, log_entries, metric_series, metric_samples) carry the correlation
-- envelope (project_id, session_id, user_id) as plain uuids WITHOUT foreign keys: they are
-- append-only, high volume, rotated out by time, and must be accepted even when the referenced row
-- is gone; ingest validates the ids instead. Configuration rows (alert rules, saved searches) do
-- have foreign keys.

-- One summary row per trace, upserted by the span ingest (ON CONFLICT (trace_id)).
CREATE TABLE traces (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  trace_id text NOT NULL UNIQUE CONSTRAINT traces_trace_id_check CHECK (trace_id ~ '^[0-9a-f]{32}$'),
  project_id uuid NULL,
  session_id uuid NULL,
  user_id uuid NULL,
  root_service text NULL,
  root_name text NULL,
  start_time timestamptz NOT NULL,
  end_time timestamptz NOT NULL,
  duration_ms double precision NOT NULL DEFAULT 0,
  span_count integer NOT NULL DEFAULT 0,
  error_count integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX traces_start_time_idx ON traces (start_time DESC);
CREATE INDEX traces_project_start_idx ON traces (project_id, start_time DESC);
CREATE INDEX traces_session_start_idx ON traces (session_id, start_time) WHERE session_id IS NOT NULL;
CREATE INDEX traces_root_service_start_idx ON traces (root_service, start_time DESC);
CREATE TRIGGER traces_set_updated_at BEFORE UPDATE ON traces
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE spans (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
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
  -- Kept separately because OTLP has nanosecond precision and timestamptz has microseconds.
  duration_ms double precision NOT NULL DEFAULT 0,
  attributes jsonb NOT NULL DEFAULT '{}',
  resource_attributes jsonb NOT NULL DEFAULT '{}',
  events jsonb NOT NULL DEFAULT '[]',
  links jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Exporters retry: a re-sent span is ignored with ON CONFLICT DO NOTHING.
  CONSTRAINT spans_trace_span_key UNIQUE (trace_id, span_id)
);
CREATE INDEX spans_start_time_idx ON spans (start_time DESC);
CREATE INDEX spans_project_start_idx ON spans (project_id, start_time DESC);
CREATE INDEX spans_session_start_idx ON spans (session_id, start_time) WHERE session_id IS NOT NULL;
CREATE INDEX spans_service_start_idx ON spans (service, start_time DESC);

-- "timestamp" is the record's own time (OTLP time_unix_nano, or observed time when absent);
-- created_at is the ingest time.
CREATE TABLE log_entries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
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
  attributes jsonb NOT NULL DEFAULT '{}',
  source_namespace text NULL,
  source_pod text NULL,
  source_container text NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX log_entries_timestamp_idx ON log_entries (timestamp DESC, id DESC);
CREATE INDEX log_entries_project_timestamp_idx ON log_entries (project_id, timestamp DESC);
CREATE INDEX log_entries_project_level_timestamp_idx ON log_entries (project_id, level, timestamp DESC);
CREATE INDEX log_entries_service_timestamp_idx ON log_entries (service, timestamp DESC);
CREATE INDEX log_entries_session_timestamp_idx ON log_entries (session_id, timestamp) WHERE session_id IS NOT NULL;
CREATE INDEX log_entries_trace_id_idx ON log_entries (trace_id) WHERE trace_id IS NOT NULL;

-- A series is identified by project + name + labels (two projects' "http_requests{service=api}"
-- must not merge).
CREATE TABLE metric_series (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NULL,
  name text NOT NULL CONSTRAINT metric_series_name_check CHECK (name <> ''),
  labels jsonb NOT NULL DEFAULT '{}',
  type text NOT NULL CONSTRAINT metric_series_type_check CHECK (type IN ('gauge', 'counter', 'histogram', 'summary')),
  unit text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  service text NULL,
  last_value double precision NULL,
  last_sample_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT metric_series_identity_key UNIQUE NULLS NOT DISTINCT (project_id, name, labels)
);
CREATE INDEX metric_series_name_idx ON metric_series (name);
CREATE INDEX metric_series_labels_idx ON metric_series USING gin (labels jsonb_path_ops);
CREATE TRIGGER metric_series_set_updated_at BEFORE UPDATE ON metric_series
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Samples are keyed by (series, time) rather than a uuid: the natural key dedupes exporter retries
-- and keeps the hottest table to one index plus the time index used by rotation.
CREATE TABLE metric_samples (
  series_id uuid NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
  timestamp timestamptz NOT NULL,
  -- gauge / counter value; for histograms and summaries the sum / count of observations.
  value double precision NULL,
  count bigint NULL,
  sum double precision NULL,
  -- histogram: {"bounds": [...], "counts": [...]}; summary: {"quantiles": [{"q":0.5,"v":...}]}.
  buckets jsonb NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (series_id, timestamp)
);
CREATE INDEX metric_samples_timestamp_idx ON metric_samples (timestamp);

-- Catalog of Parquet files written by the rotation loop (otel/<signal>/<yyyy-mm-dd>/<batch>.parquet),
-- so queries beyond the hot window know which files to open without listing the object store.
CREATE TABLE observe_cold_files (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  signal text NOT NULL CONSTRAINT observe_cold_files_signal_check CHECK (signal IN ('logs', 'spans', 'metrics')),
  object_key text NOT NULL UNIQUE,
  -- UTC day of the rows as 'yyyy-mm-dd' (text, not date: drivers disagree on how to parse date).
  day text NOT NULL CONSTRAINT observe_cold_files_day_check CHECK (day ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'),
  min_time timestamptz NOT NULL,
  max_time timestamptz NOT NULL,
  row_count bigint NOT NULL CONSTRAINT observe_cold_files_row_count_check CHECK (row_count >= 0),
  size_bytes bigint NOT NULL CONSTRAINT observe_cold_files_size_bytes_check CHECK (size_bytes >= 0),
  -- Projects present in the file (NULL project rows are not listed), to skip files by project.
  project_ids uuid[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT observe_cold_files_time_range_check CHECK (min_time <= max_time)
);
CREATE INDEX observe_cold_files_signal_time_idx ON observe_cold_files (signal, min_time, max_time);
CREATE INDEX observe_cold_files_day_idx ON observe_cold_files (day);

CREATE TABLE alert_rules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- NULL = a platform-wide rule (admins only).
  project_id uuid NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT alert_rules_name_check CHECK (btrim(name) <> ''),
  description text NOT NULL DEFAULT '',
  -- Expression in the observe query language, e.g. avg(http_request_duration_ms{service="api"}[5m]).
  query text NOT NULL,
  condition text NOT NULL CONSTRAINT alert_rules_condition_check CHECK (condition IN ('gt', 'lt', 'eq', 'absent')),
  threshold double precision NULL,
  for_seconds integer NOT NULL DEFAULT 0 CONSTRAINT alert_rules_for_seconds_check CHECK (for_seconds >= 0),
  severity text NOT NULL DEFAULT 'warning'
    CONSTRAINT alert_rules_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
  channels text[] NOT NULL DEFAULT '{in_app}'
    CONSTRAINT alert_rules_channels_check CHECK (channels <@ ARRAY['in_app', 'email', 'webhook']::text[]),
  is_enabled boolean NOT NULL DEFAULT true,
  -- Evaluation state machine: ok -> pending (condition true) -> firing (held for_seconds) -> resolved.
  state text NOT NULL DEFAULT 'ok'
    CONSTRAINT alert_rules_state_check CHECK (state IN ('ok', 'pending', 'firing', 'resolved')),
  pending_since timestamptz NULL,
  last_evaluated_at timestamptz NULL,
  last_value double precision NULL,
  last_error text NULL,
  created_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT alert_rules_threshold_check CHECK (condition = 'absent' OR threshold IS NOT NULL)
);
CREATE INDEX alert_rules_project_created_idx ON alert_rules (project_id, created_at DESC);
CREATE INDEX alert_rules_enabled_idx ON alert_rules (state) WHERE is_enabled;
CREATE TRIGGER alert_rules_set_updated_at BEFORE UPDATE ON alert_rules
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One immutable row per firing / resolved transition. started_at is when the condition first
-- became true for the episode (equal for the firing and the resolved row of one episode).
CREATE TABLE alert_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  rule_id uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
  project_id uuid NULL REFERENCES projects (id) ON DELETE CASCADE,
  status text NOT NULL CONSTRAINT alert_events_status_check CHECK (status IN ('firing', 'resolved')),
  value double precision NULL,
  threshold double precision NULL,
  message text NOT NULL DEFAULT '',
  started_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- At most one firing and one resolved row per episode, even if two evaluators race.
  CONSTRAINT alert_events_episode_key UNIQUE (rule_id, started_at, status)
);
CREATE INDEX alert_events_rule_created_idx ON alert_events (rule_id, created_at DESC);
CREATE INDEX alert_events_project_created_idx ON alert_events (project_id, created_at DESC);

CREATE TABLE saved_searches (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id uuid NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT saved_searches_name_check CHECK (btrim(name) <> ''),
  signal text NOT NULL CONSTRAINT saved_searches_signal_check CHECK (signal IN ('logs', 'traces', 'metrics')),
  query text NOT NULL,
  -- UI filter state (time range, level, service, ...).
  filters jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT saved_searches_user_name_key UNIQUE (user_id, name)
);
CREATE INDEX saved_searches_project_id_idx ON saved_searches (project_id) WHERE project_id IS NOT NULL;
CREATE TRIGGER saved_searches_set_updated_at BEFORE UPDATE ON saved_searches
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
