-- Identity: users, roles, permissions, bindings, delegations, sessions and API tokens.
-- The project_id columns of user_roles, delegations and api_tokens get their foreign keys in
-- 0003_projects, once the projects table exists.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE CONSTRAINT users_name_slug CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  email text NOT NULL UNIQUE CONSTRAINT users_email_format CHECK (
    char_length(email) <= 320 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'
  ),
  display_name text NULL,
  -- argon2id PHC string; NULL for agents and service accounts (they never log in with a password).
  password_hash text NULL,
  user_type text NOT NULL DEFAULT 'human'
    CONSTRAINT users_user_type_check CHECK (user_type IN ('human', 'agent', 'service_account')),
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- E-mail addresses are unique regardless of case (Alice@x and alice@x are one mailbox).
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE permissions (
  name text PRIMARY KEY CONSTRAINT permissions_name_format CHECK (name ~ '^[a-z][a-z_]*:[a-z][a-z_]*$'),
  description text NOT NULL DEFAULT ''
);

CREATE TABLE roles (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE CONSTRAINT roles_name_check CHECK (char_length(btrim(name)) BETWEEN 1 AND 100),
  description text NOT NULL DEFAULT '',
  is_system boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER roles_set_updated_at BEFORE UPDATE ON roles
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE role_permissions (
  role_id uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  permission text NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
  PRIMARY KEY (role_id, permission)
);
CREATE INDEX role_permissions_permission_idx ON role_permissions (permission);

-- A role bound globally (project_id NULL) or to one project.
CREATE TABLE user_roles (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role_id uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  project_id uuid NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT user_roles_binding_key UNIQUE NULLS NOT DISTINCT (user_id, role_id, project_id)
);
CREATE INDEX user_roles_role_id_idx ON user_roles (role_id);
CREATE INDEX user_roles_project_id_idx ON user_roles (project_id) WHERE project_id IS NOT NULL;

CREATE TABLE delegations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  delegator_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  delegate_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  permission text NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
  project_id uuid NULL,
  expires_at timestamptz NULL,
  reason text NOT NULL DEFAULT '',
  revoked_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT delegations_not_self CHECK (delegator_id <> delegate_id)
);
-- One live grant per delegator/delegate/permission/scope; revoked rows stay as history.
CREATE UNIQUE INDEX delegations_active_key ON delegations (
  delegator_id, delegate_id, permission, COALESCE(project_id, '00000000-0000-0000-0000-000000000000'::uuid)
) WHERE revoked_at IS NULL;
CREATE INDEX delegations_delegate_id_idx ON delegations (delegate_id);
CREATE INDEX delegations_delegator_id_idx ON delegations (delegator_id, created_at DESC);
CREATE INDEX delegations_project_id_idx ON delegations (project_id) WHERE project_id IS NOT NULL;

-- Browser sessions; only the SHA-256 of the cookie token is stored.
CREATE TABLE auth_sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  ip text NULL,
  user_agent text NULL,
  expires_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_sessions_expires_at_idx ON auth_sessions (expires_at);
CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);

-- API tokens; only the hash is stored, token_prefix is kept for display ("plat_api_ab12…").
CREATE TABLE api_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT api_tokens_name_check CHECK (char_length(btrim(name)) BETWEEN 1 AND 200),
  token_hash text NOT NULL UNIQUE,
  token_prefix text NOT NULL CONSTRAINT api_tokens_token_prefix_check CHECK (token_prefix <> ''),
  -- NULL = no restriction beyond the owner's permissions; otherwise a subset of permission names.
  scopes text[] NULL,
  project_id uuid NULL,
  last_used_at timestamptz NULL,
  expires_at timestamptz NULL,
  revoked_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);
CREATE INDEX api_tokens_project_id_idx ON api_tokens (project_id) WHERE project_id IS NOT NULL;
