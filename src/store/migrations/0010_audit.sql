-- Audit log: append-only history of every mutation, written in the transaction of the change.
-- actor_id and project_id deliberately have no foreign keys: the history must survive the
-- deletion of the user or project it mentions (actor_name keeps who it was).

CREATE TABLE audit_log (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  actor_id uuid NULL,
  actor_name text NOT NULL,
  -- <resource>.<verb>, e.g. project.create, role.assign, auth.login_failed.
  action text NOT NULL CONSTRAINT audit_log_action_check CHECK (action ~ '^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$'),
  resource_type text NOT NULL,
  resource_id text NULL,
  project_id uuid NULL,
  detail jsonb NOT NULL DEFAULT '{}',
  ip text NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC);
CREATE INDEX audit_log_project_created_idx ON audit_log (project_id, created_at DESC);
CREATE INDEX audit_log_actor_created_idx ON audit_log (actor_id, created_at DESC);
CREATE INDEX audit_log_action_created_idx ON audit_log (action, created_at DESC);

-- Rows are never rewritten; an UPDATE is a bug, so it fails loudly instead of altering history.
CREATE OR REPLACE FUNCTION audit_log_reject_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log rows are immutable' USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER audit_log_immutable BEFORE UPDATE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_reject_update();
