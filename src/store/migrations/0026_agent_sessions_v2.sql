-- Agent sessions v2: limits the platform enforces, why a session was stopped, where it came from
-- (an issue or a merge request comment), the commit its branch started from (the commits it
-- produced are base..branch), and the admin's settings (the global cap, the command providers)
-- and each project's (its cap, its daily cost budget).
ALTER TABLE agent_sessions
  -- {max_cost_usd, max_tokens, max_turns, max_wall_seconds}: absent = no limit.
  ADD COLUMN limits jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN stop_reason text NULL CONSTRAINT agent_sessions_stop_reason_check CHECK (
    stop_reason IN ('user', 'cost_limit', 'token_limit', 'turn_limit', 'wall_clock', 'daily_budget', 'access_lost')
  ),
  ADD COLUMN num_turns integer NOT NULL DEFAULT 0,
  ADD COLUMN base_sha text NULL,
  ADD COLUMN issue_number integer NULL,
  ADD COLUMN merge_request_number integer NULL;

-- The daily budget sums the cost of a project's sessions of the day.
CREATE INDEX agent_sessions_project_finished_idx ON agent_sessions (project_id, created_at) WHERE cost_usd > 0;
CREATE INDEX agent_sessions_lease_idx ON agent_sessions (lease_expires_at) WHERE status IN ('pending', 'running');

-- One row (id = true): the platform-wide agent settings an admin sets through the API.
CREATE TABLE agent_settings (
  id boolean PRIMARY KEY DEFAULT true CONSTRAINT agent_settings_singleton CHECK (id),
  max_running_total integer NOT NULL DEFAULT 16 CONSTRAINT agent_settings_total_check CHECK (max_running_total >= 0),
  max_running_per_project integer NOT NULL DEFAULT 4
    CONSTRAINT agent_settings_project_check CHECK (max_running_per_project >= 0),
  sessions_per_user_per_hour integer NOT NULL DEFAULT 60
    CONSTRAINT agent_settings_rate_check CHECK (sessions_per_user_per_hour >= 0),
  timeout_seconds integer NOT NULL DEFAULT 3600 CONSTRAINT agent_settings_timeout_check CHECK (timeout_seconds > 0),
  -- The `claude` executable the claude-code provider runs (a path, or a name on PATH).
  claude_command text NOT NULL DEFAULT 'claude',
  -- Container image of agent pods (kubernetes runner).
  image text NOT NULL DEFAULT 'node:20-bookworm',
  -- Command providers by name: {"<name>": {"command": [...], "prompt": "stdin" | "env" | "arg"}}.
  providers jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO agent_settings (id) VALUES (true);

-- A project's own cap and daily cost budget (null = the platform's cap / no budget).
CREATE TABLE agent_project_settings (
  project_id uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
  max_running integer NULL CONSTRAINT agent_project_settings_running_check CHECK (max_running >= 0),
  daily_cost_usd double precision NULL CONSTRAINT agent_project_settings_budget_check CHECK (daily_cost_usd >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
