-- Continuous deployer: ops repos, desired/current deployment state, history, preview environments.

CREATE TABLE ops_repos (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE CONSTRAINT ops_repos_name_slug CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  repo_url text NOT NULL CONSTRAINT ops_repos_repo_url_check CHECK (repo_url <> ''),
  -- Set when repo_url points at a project on this platform (cloned locally, no network).
  project_id uuid NULL REFERENCES projects (id) ON DELETE SET NULL,
  branch text NOT NULL DEFAULT 'main',
  -- Sub-directory holding apps/<project>/...; '' = repository root.
  path text NOT NULL DEFAULT '',
  -- Name of a global secret holding credentials for an external repo_url.
  credentials_secret text NULL,
  sync_interval_seconds integer NOT NULL DEFAULT 60
    CONSTRAINT ops_repos_sync_interval_check CHECK (sync_interval_seconds >= 5),
  last_sync_status text NULL
    CONSTRAINT ops_repos_last_sync_status_check CHECK (last_sync_status IN ('success', 'failure')),
  last_synced_at timestamptz NULL,
  last_sync_sha text NULL,
  last_sync_error text NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER ops_repos_set_updated_at BEFORE UPDATE ON ops_repos
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per (project, environment): what should run (desired_*, refs, generation) and what the
-- reconciler last observed (current_*, observed_generation). Any change of the spec bumps
-- generation; the reconciler works on rows where generation <> observed_generation or the
-- desired and current status disagree.
CREATE TABLE deployments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  -- DNS-label safe (used in namespaces, routes and preview-<slug> names).
  environment text NOT NULL CONSTRAINT deployments_environment_check CHECK (
    environment ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
  ),
  ops_repo_id uuid NULL REFERENCES ops_repos (id) ON DELETE SET NULL,
  -- What to run: a container image (kubernetes) and/or a published artifact (local target).
  image_ref text NULL,
  artifact_id uuid NULL REFERENCES artifacts (id) ON DELETE SET NULL,
  pipeline_id uuid NULL REFERENCES pipelines (id) ON DELETE SET NULL,
  commit_sha text NULL,
  -- Merged over values.yaml and <environment>.values.yaml.
  values_override jsonb NOT NULL DEFAULT '{}',
  namespace text NULL,
  auto_rollback boolean NOT NULL DEFAULT true,
  desired_status text NOT NULL DEFAULT 'active'
    CONSTRAINT deployments_desired_status_check CHECK (desired_status IN ('active', 'stopped', 'rollback')),
  -- 'stopped' is the observed state of a deployment stopped on purpose (desired_status 'stopped').
  current_status text NOT NULL DEFAULT 'pending' CONSTRAINT deployments_current_status_check CHECK (
    current_status IN ('pending', 'syncing', 'healthy', 'degraded', 'failed', 'stopped')
  ),
  status_message text NULL,
  generation integer NOT NULL DEFAULT 1,
  observed_generation integer NOT NULL DEFAULT 0,
  current_ops_sha text NULL,
  -- Instance reconciling the row (apply + rollout wait outlive a row lock's transaction).
  lease_holder text NULL,
  lease_expires_at timestamptz NULL,
  deployed_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  deployed_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT deployments_project_environment_key UNIQUE (project_id, environment)
);
CREATE INDEX deployments_status_idx ON deployments (desired_status, current_status);
CREATE INDEX deployments_project_created_idx ON deployments (project_id, created_at DESC);
CREATE INDEX deployments_ops_repo_id_idx ON deployments (ops_repo_id) WHERE ops_repo_id IS NOT NULL;
CREATE INDEX deployments_artifact_id_idx ON deployments (artifact_id) WHERE artifact_id IS NOT NULL;
CREATE TRIGGER deployments_set_updated_at BEFORE UPDATE ON deployments
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Immutable record of every deploy/rollback/stop/scale and its outcome (rollback reads the
-- previous successful refs from here).
CREATE TABLE deployment_history (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  environment text NOT NULL,
  action text NOT NULL
    CONSTRAINT deployment_history_action_check CHECK (action IN ('deploy', 'rollback', 'stop', 'scale')),
  result text NOT NULL CONSTRAINT deployment_history_result_check CHECK (result IN ('success', 'failure')),
  image_ref text NULL,
  artifact_id uuid NULL REFERENCES artifacts (id) ON DELETE SET NULL,
  pipeline_id uuid NULL REFERENCES pipelines (id) ON DELETE SET NULL,
  commit_sha text NULL,
  ops_sha text NULL,
  -- NULL = the reconciler acting on its own (automatic rollback, TTL teardown).
  actor_id uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  message text NOT NULL DEFAULT '',
  duration_ms integer NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deployment_history_deployment_created_idx ON deployment_history (deployment_id, created_at DESC);
CREATE INDEX deployment_history_project_created_idx ON deployment_history (project_id, created_at DESC);

-- Per-branch/MR environments (preview-<slug>), torn down when the MR merges or closes or the TTL
-- passes. The deployment itself is the deployments row with the same (project_id, environment).
CREATE TABLE preview_environments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  environment text NOT NULL CONSTRAINT preview_environments_environment_check CHECK (
    environment ~ '^preview-[a-z0-9]([a-z0-9-]{0,53}[a-z0-9])?$'
  ),
  branch text NOT NULL,
  mr_id uuid NULL REFERENCES merge_requests (id) ON DELETE SET NULL,
  status text NOT NULL DEFAULT 'active'
    CONSTRAINT preview_environments_status_check CHECK (status IN ('active', 'tearing_down', 'torn_down')),
  expires_at timestamptz NULL,
  torn_down_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT preview_environments_project_environment_key UNIQUE (project_id, environment),
  CONSTRAINT preview_environments_deployment_fkey FOREIGN KEY (project_id, environment)
    REFERENCES deployments (project_id, environment) ON DELETE CASCADE
);
CREATE INDEX preview_environments_mr_id_idx ON preview_environments (mr_id) WHERE mr_id IS NOT NULL;
CREATE INDEX preview_environments_expires_at_idx ON preview_environments (expires_at)
  WHERE status = 'active' AND expires_at IS NOT NULL;
CREATE TRIGGER preview_environments_set_updated_at BEFORE UPDATE ON preview_environments
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
