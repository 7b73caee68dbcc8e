-- Projects (forge metadata): projects and their git-side metadata (protection rules, LFS objects,
-- rename redirects), issues, merge requests, reviews, comments and webhooks.

CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Users own projects; a user who owns projects cannot be hard-deleted (deactivate instead).
  owner_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  name text NOT NULL CONSTRAINT projects_name_slug CHECK (
    name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$' AND name !~ '\.git$'
  ),
  display_name text NULL,
  description text NOT NULL DEFAULT '',
  visibility text NOT NULL DEFAULT 'private'
    CONSTRAINT projects_visibility_check CHECK (visibility IN ('private', 'internal', 'public')),
  default_branch text NOT NULL DEFAULT 'main'
    CONSTRAINT projects_default_branch_check CHECK (char_length(default_branch) BETWEEN 1 AND 255),
  repo_path text NOT NULL,
  -- false = archived (soft-deleted); the bare repository is kept.
  is_active boolean NOT NULL DEFAULT true,
  next_issue_number integer NOT NULL DEFAULT 1 CONSTRAINT projects_next_issue_number_check CHECK (next_issue_number >= 1),
  next_mr_number integer NOT NULL DEFAULT 1 CONSTRAINT projects_next_mr_number_check CHECK (next_mr_number >= 1),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT projects_owner_name_key UNIQUE (owner_id, name)
);
CREATE INDEX projects_created_at_idx ON projects (created_at DESC, id DESC);
CREATE INDEX projects_visibility_idx ON projects (visibility, created_at DESC);
CREATE TRIGGER projects_set_updated_at BEFORE UPDATE ON projects
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Foreign keys from identity tables that could not be declared before projects existed.
ALTER TABLE user_roles
  ADD CONSTRAINT user_roles_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE delegations
  ADD CONSTRAINT delegations_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;
ALTER TABLE api_tokens
  ADD CONSTRAINT api_tokens_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;

-- Old owner/name pairs of renamed projects, so clone URLs keep working (answered with a redirect).
CREATE TABLE project_redirects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT project_redirects_owner_name_key UNIQUE (owner_id, name)
);
CREATE INDEX project_redirects_project_id_idx ON project_redirects (project_id);

-- Branch protection, matched by glob pattern ("main", "release/*"). The default branch is always
-- protected against force push and deletion by the push policy, with or without a row here.
CREATE TABLE protected_branches (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  pattern text NOT NULL CONSTRAINT protected_branches_pattern_check CHECK (char_length(pattern) BETWEEN 1 AND 255),
  allow_force_push boolean NOT NULL DEFAULT false,
  allow_deletion boolean NOT NULL DEFAULT false,
  required_approvals integer NOT NULL DEFAULT 0
    CONSTRAINT protected_branches_required_approvals_check CHECK (required_approvals BETWEEN 0 AND 100),
  require_pipeline boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT protected_branches_project_pattern_key UNIQUE (project_id, pattern)
);
CREATE TRIGGER protected_branches_set_updated_at BEFORE UPDATE ON protected_branches
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Git LFS objects known to a project (stored at lfs/<project_id>/<oid> in the object store);
-- verified_at is set by the batch API's verify action once the upload's size has been checked.
CREATE TABLE lfs_objects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  oid text NOT NULL CONSTRAINT lfs_objects_oid_check CHECK (oid ~ '^[0-9a-f]{64}$'),
  size bigint NOT NULL CONSTRAINT lfs_objects_size_check CHECK (size >= 0),
  verified_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT lfs_objects_project_oid_key UNIQUE (project_id, oid)
);

CREATE TABLE issues (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  -- Allocated from projects.next_issue_number in the creating transaction.
  number integer NOT NULL CONSTRAINT issues_number_check CHECK (number >= 1),
  title text NOT NULL CONSTRAINT issues_title_check CHECK (btrim(title) <> ''),
  body text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'open' CONSTRAINT issues_status_check CHECK (status IN ('open', 'closed')),
  labels text[] NOT NULL DEFAULT '{}',
  author_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  assignee_id uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  closed_at timestamptz NULL,
  closed_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT issues_project_number_key UNIQUE (project_id, number),
  -- Target of the composite foreign key from comments (keeps comments.project_id truthful).
  CONSTRAINT issues_project_id_id_key UNIQUE (project_id, id)
);
CREATE INDEX issues_project_created_idx ON issues (project_id, created_at DESC);
CREATE INDEX issues_project_status_idx ON issues (project_id, status, number DESC);
CREATE INDEX issues_author_id_idx ON issues (author_id);
CREATE INDEX issues_assignee_id_idx ON issues (assignee_id) WHERE assignee_id IS NOT NULL;
CREATE INDEX issues_labels_idx ON issues USING gin (labels);
CREATE TRIGGER issues_set_updated_at BEFORE UPDATE ON issues
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE merge_requests (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  -- Allocated from projects.next_mr_number in the creating transaction.
  number integer NOT NULL CONSTRAINT merge_requests_number_check CHECK (number >= 1),
  title text NOT NULL CONSTRAINT merge_requests_title_check CHECK (btrim(title) <> ''),
  body text NOT NULL DEFAULT '',
  source_branch text NOT NULL,
  target_branch text NOT NULL,
  status text NOT NULL DEFAULT 'open'
    CONSTRAINT merge_requests_status_check CHECK (status IN ('open', 'merged', 'closed')),
  author_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  -- Commit at the tip of source_branch, updated on every push to it (mr.updated).
  head_sha text NULL,
  -- Tip of target_branch when the MR was opened or last updated (merge base for diffs).
  base_sha text NULL,
  merge_strategy text NULL
    CONSTRAINT merge_requests_merge_strategy_check CHECK (merge_strategy IN ('merge', 'squash', 'fast_forward')),
  merge_sha text NULL,
  merged_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  merged_at timestamptz NULL,
  closed_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT merge_requests_branches_differ CHECK (source_branch <> target_branch),
  CONSTRAINT merge_requests_project_number_key UNIQUE (project_id, number),
  CONSTRAINT merge_requests_project_id_id_key UNIQUE (project_id, id)
);
-- At most one open MR per source -> target pair (a second one is a 409).
CREATE UNIQUE INDEX merge_requests_open_pair_key ON merge_requests (project_id, source_branch, target_branch)
  WHERE status = 'open';
CREATE INDEX merge_requests_project_created_idx ON merge_requests (project_id, created_at DESC);
CREATE INDEX merge_requests_project_status_idx ON merge_requests (project_id, status, number DESC);
CREATE INDEX merge_requests_author_id_idx ON merge_requests (author_id);
CREATE TRIGGER merge_requests_set_updated_at BEFORE UPDATE ON merge_requests
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Reviewers asked to look at an MR ("review requested" notifications).
CREATE TABLE mr_reviewers (
  mr_id uuid NOT NULL REFERENCES merge_requests (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  requested_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mr_id, user_id)
);
CREATE INDEX mr_reviewers_user_id_idx ON mr_reviewers (user_id);

-- Reviews are immutable; the latest review of each reviewer counts for approvals.
CREATE TABLE mr_reviews (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  mr_id uuid NOT NULL REFERENCES merge_requests (id) ON DELETE CASCADE,
  reviewer_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  verdict text NOT NULL CONSTRAINT mr_reviews_verdict_check CHECK (verdict IN ('approve', 'request_changes', 'comment')),
  body text NOT NULL DEFAULT '',
  -- MR head when reviewed, so approvals of an older head can be told apart.
  commit_sha text NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mr_reviews_mr_created_idx ON mr_reviews (mr_id, created_at);
CREATE INDEX mr_reviews_reviewer_id_idx ON mr_reviews (reviewer_id);

-- A comment belongs to exactly one issue or one MR; project_id is denormalized for listing and
-- authorization, and the composite foreign keys guarantee it matches the parent's project.
CREATE TABLE comments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  issue_id uuid NULL,
  mr_id uuid NULL,
  author_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  body text NOT NULL CONSTRAINT comments_body_check CHECK (btrim(body) <> ''),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT comments_one_parent CHECK (num_nonnulls(issue_id, mr_id) = 1),
  CONSTRAINT comments_issue_fkey FOREIGN KEY (project_id, issue_id)
    REFERENCES issues (project_id, id) ON DELETE CASCADE,
  CONSTRAINT comments_mr_fkey FOREIGN KEY (project_id, mr_id)
    REFERENCES merge_requests (project_id, id) ON DELETE CASCADE
);
CREATE INDEX comments_issue_created_idx ON comments (issue_id, created_at) WHERE issue_id IS NOT NULL;
CREATE INDEX comments_mr_created_idx ON comments (mr_id, created_at) WHERE mr_id IS NOT NULL;
CREATE INDEX comments_project_created_idx ON comments (project_id, created_at DESC);
CREATE INDEX comments_author_id_idx ON comments (author_id);
CREATE TRIGGER comments_set_updated_at BEFORE UPDATE ON comments
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE webhooks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  url text NOT NULL CONSTRAINT webhooks_url_check CHECK (url ~* '^https?://'),
  events text[] NOT NULL DEFAULT '{}' CONSTRAINT webhooks_events_check CHECK (
    events <@ ARRAY['push', 'mr', 'issue', 'pipeline', 'deploy', 'session', 'alert']::text[]
  ),
  -- HMAC signing secret, encrypted with the master key like secrets.ciphertext (it must be
  -- recoverable to sign, so it cannot be hashed). NULL = deliveries are unsigned.
  secret_ciphertext bytea NULL,
  is_active boolean NOT NULL DEFAULT true,
  created_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_project_id_idx ON webhooks (project_id);
CREATE TRIGGER webhooks_set_updated_at BEFORE UPDATE ON webhooks
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per delivery attempt, doubling as a durable outbox: a worker claims due 'pending' rows
-- (FOR UPDATE SKIP LOCKED, pushing next_attempt_at forward as a lease), records the outcome, and on
-- a retryable failure inserts the next attempt with the same delivery_id (X-Platform-Delivery).
CREATE TABLE webhook_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  delivery_id uuid NOT NULL,
  event text NOT NULL,
  payload jsonb NOT NULL,
  attempt integer NOT NULL DEFAULT 1 CONSTRAINT webhook_deliveries_attempt_check CHECK (attempt >= 1),
  status text NOT NULL DEFAULT 'pending'
    CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'success', 'failure')),
  status_code integer NULL,
  duration_ms integer NULL,
  error text NULL,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhook_deliveries_attempt_key UNIQUE (delivery_id, attempt)
);
CREATE INDEX webhook_deliveries_webhook_created_idx ON webhook_deliveries (webhook_id, created_at DESC);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE TRIGGER webhook_deliveries_set_updated_at BEFORE UPDATE ON webhook_deliveries
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
