-- Build engine: pipelines, their steps, artifacts and cron schedules.

CREATE TABLE pipelines (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  trigger text NOT NULL CONSTRAINT pipelines_trigger_check CHECK (trigger IN ('push', 'api', 'schedule', 'mr')),
  -- Full ref being built: refs/heads/main, refs/tags/v1, ...
  git_ref text NOT NULL CONSTRAINT pipelines_git_ref_check CHECK (git_ref <> ''),
  commit_sha text NOT NULL CONSTRAINT pipelines_commit_sha_check CHECK (commit_sha ~ '^[0-9a-f]{7,64}$'),
  commit_message text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'pending'
    CONSTRAINT pipelines_status_check CHECK (status IN ('pending', 'running', 'success', 'failure', 'cancelled')),
  -- NULL for scheduled pipelines and pushes by unknown users.
  triggered_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  mr_id uuid NULL REFERENCES merge_requests (id) ON DELETE SET NULL,
  -- The pipeline this one retries.
  retry_of uuid NULL REFERENCES pipelines (id) ON DELETE SET NULL,
  -- Pipelines sharing a group run one at a time (e.g. deploys of one environment).
  concurrency_group text NULL,
  -- Why it failed before or outside any step (invalid .platform.yaml, runner lost, ...).
  error text NULL,
  -- Variables given to an api trigger (never secret values).
  variables jsonb NOT NULL DEFAULT '{}',
  -- The parsed definition the pipeline was created from, so execution and retries do not re-read git.
  definition jsonb NULL,
  -- Instance executing the pipeline; a pipeline whose lease expired is failed (interrupted) at start-up.
  lease_holder text NULL,
  lease_expires_at timestamptz NULL,
  started_at timestamptz NULL,
  finished_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pipelines_project_created_idx ON pipelines (project_id, created_at DESC);
CREATE INDEX pipelines_project_ref_idx ON pipelines (project_id, git_ref, created_at DESC);
-- MR checks: latest pipeline for a commit.
CREATE INDEX pipelines_project_commit_idx ON pipelines (project_id, commit_sha, created_at DESC);
CREATE INDEX pipelines_mr_id_idx ON pipelines (mr_id, created_at DESC) WHERE mr_id IS NOT NULL;
CREATE INDEX pipelines_triggered_by_idx ON pipelines (triggered_by) WHERE triggered_by IS NOT NULL;
-- The work queue: claimed with FOR UPDATE SKIP LOCKED in creation order.
CREATE INDEX pipelines_queue_idx ON pipelines (status, created_at) WHERE status IN ('pending', 'running');
CREATE INDEX pipelines_concurrency_group_idx ON pipelines (concurrency_group, created_at)
  WHERE concurrency_group IS NOT NULL AND status IN ('pending', 'running');
CREATE TRIGGER pipelines_set_updated_at BEFORE UPDATE ON pipelines
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE pipeline_steps (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT pipeline_steps_name_check CHECK (name <> ''),
  -- Order of the step in the definition (display order; execution follows depends_on).
  position integer NOT NULL CONSTRAINT pipeline_steps_position_check CHECK (position >= 0),
  image text NULL,
  commands text[] NOT NULL DEFAULT '{}',
  -- Environment as written in the definition (secret references unresolved).
  environment jsonb NOT NULL DEFAULT '{}',
  depends_on text[] NOT NULL DEFAULT '{}',
  allow_failure boolean NOT NULL DEFAULT false,
  timeout_seconds integer NULL CONSTRAINT pipeline_steps_timeout_check CHECK (timeout_seconds > 0),
  -- Step-level publish spec ({artifact|image, environment}) handed to the deployer on success.
  publish jsonb NULL,
  status text NOT NULL DEFAULT 'pending' CONSTRAINT pipeline_steps_status_check CHECK (
    status IN ('pending', 'running', 'success', 'failure', 'skipped', 'cancelled')
  ),
  exit_code integer NULL,
  error text NULL,
  -- Object-store key of the stored log (logs/pipelines/<pid>/<step>.log).
  log_key text NULL,
  log_size bigint NULL,
  duration_ms integer NULL,
  started_at timestamptz NULL,
  finished_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pipeline_steps_pipeline_name_key UNIQUE (pipeline_id, name),
  CONSTRAINT pipeline_steps_pipeline_position_key UNIQUE (pipeline_id, position)
);
CREATE TRIGGER pipeline_steps_set_updated_at BEFORE UPDATE ON pipeline_steps
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE artifacts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  step_id uuid NULL REFERENCES pipeline_steps (id) ON DELETE SET NULL,
  name text NOT NULL CONSTRAINT artifacts_name_check CHECK (name <> ''),
  object_key text NOT NULL UNIQUE,
  content_type text NOT NULL DEFAULT 'application/octet-stream',
  size_bytes bigint NOT NULL DEFAULT 0 CONSTRAINT artifacts_size_bytes_check CHECK (size_bytes >= 0),
  sha256 text NULL,
  -- NULL = kept until the pipeline is deleted (published artifacts must outlive their expiry).
  expires_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT artifacts_pipeline_name_key UNIQUE (pipeline_id, name)
);
CREATE INDEX artifacts_project_created_idx ON artifacts (project_id, created_at DESC);
CREATE INDEX artifacts_expires_at_idx ON artifacts (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX artifacts_step_id_idx ON artifacts (step_id) WHERE step_id IS NOT NULL;

-- Cron triggers from the default branch's .platform.yaml, refreshed on push; the schedule loop
-- (one instance, via scheduler_leases) fires rows whose next_run_at has passed.
CREATE TABLE pipeline_schedules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  git_ref text NOT NULL,
  cron text NOT NULL,
  is_active boolean NOT NULL DEFAULT true,
  next_run_at timestamptz NOT NULL,
  last_run_at timestamptz NULL,
  last_pipeline_id uuid NULL REFERENCES pipelines (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pipeline_schedules_project_ref_cron_key UNIQUE (project_id, git_ref, cron)
);
CREATE INDEX pipeline_schedules_due_idx ON pipeline_schedules (next_run_at) WHERE is_active;
CREATE TRIGGER pipeline_schedules_set_updated_at BEFORE UPDATE ON pipeline_schedules
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
