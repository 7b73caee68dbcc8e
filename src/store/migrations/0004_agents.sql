-- Agent sessions: an AI coding agent working on one project with its own short-lived identity.

CREATE TABLE agent_sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  -- The user who started the session (the delegator).
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  -- The agent identity (user_type 'agent') created for this session; set once it exists.
  agent_user_id uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  -- Token handed to the agent process; revoked when the session ends.
  api_token_id uuid NULL REFERENCES api_tokens (id) ON DELETE SET NULL,
  prompt text NOT NULL CONSTRAINT agent_sessions_prompt_check CHECK (char_length(prompt) BETWEEN 1 AND 100000),
  status text NOT NULL DEFAULT 'pending'
    CONSTRAINT agent_sessions_status_check CHECK (status IN ('pending', 'running', 'completed', 'failed', 'stopped')),
  provider text NOT NULL DEFAULT 'claude-code',
  -- Provider options (model, extra args, ...); never secrets (those come from the secrets module).
  provider_config jsonb NOT NULL DEFAULT '{}',
  branch text NULL,
  -- Permissions delegated from user_id to the agent for this project.
  permissions text[] NOT NULL DEFAULT '{project:read,project:write}',
  runner text NULL CONSTRAINT agent_sessions_runner_check CHECK (runner IN ('local', 'kubernetes')),
  -- Process group id or pod name, for stop and for the reaper.
  runner_ref text NULL,
  -- Instance running the session; the reaper repairs sessions whose lease expired.
  lease_holder text NULL,
  lease_expires_at timestamptz NULL,
  -- Sequence counter for agent_messages.seq (allocated with UPDATE ... RETURNING).
  next_message_seq integer NOT NULL DEFAULT 1,
  exit_code integer NULL,
  error text NULL,
  input_tokens bigint NOT NULL DEFAULT 0 CONSTRAINT agent_sessions_input_tokens_check CHECK (input_tokens >= 0),
  output_tokens bigint NOT NULL DEFAULT 0 CONSTRAINT agent_sessions_output_tokens_check CHECK (output_tokens >= 0),
  cache_read_tokens bigint NOT NULL DEFAULT 0,
  cache_write_tokens bigint NOT NULL DEFAULT 0,
  cost_usd double precision NOT NULL DEFAULT 0,
  deadline_at timestamptz NULL,
  started_at timestamptz NULL,
  finished_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_sessions_project_created_idx ON agent_sessions (project_id, created_at DESC);
CREATE INDEX agent_sessions_user_created_idx ON agent_sessions (user_id, created_at DESC);
CREATE INDEX agent_sessions_agent_user_id_idx ON agent_sessions (agent_user_id) WHERE agent_user_id IS NOT NULL;
-- Concurrency caps and the reaper only look at live sessions.
CREATE INDEX agent_sessions_live_idx ON agent_sessions (status, project_id) WHERE status IN ('pending', 'running');
CREATE TRIGGER agent_sessions_set_updated_at BEFORE UPDATE ON agent_sessions
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Progress events and chat messages of a session, replayable from a sequence number.
CREATE TABLE agent_messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id uuid NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
  seq integer NOT NULL CONSTRAINT agent_messages_seq_check CHECK (seq >= 1),
  role text NOT NULL CONSTRAINT agent_messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  kind text NOT NULL DEFAULT 'text' CONSTRAINT agent_messages_kind_check CHECK (
    kind IN ('init', 'text', 'thinking', 'tool_call', 'tool_result', 'milestone', 'error', 'usage', 'completed')
  ),
  content text NOT NULL DEFAULT '',
  -- Tool name and input summary, milestone name, usage numbers, raw provider fields, ...
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT agent_messages_session_seq_key UNIQUE (session_id, seq)
);
