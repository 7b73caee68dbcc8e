-- Git LFS file locks (the LFS locking API): one lock per path in a project, held by one user.
CREATE TABLE lfs_locks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  path text NOT NULL CONSTRAINT lfs_locks_path_check CHECK (length(path) BETWEEN 1 AND 4096),
  -- The ref the client named when locking (informational: a lock covers the path on every ref).
  ref_name text NULL,
  owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  locked_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT lfs_locks_project_path_key UNIQUE (project_id, path)
);
CREATE INDEX lfs_locks_project_locked_at_idx ON lfs_locks (project_id, locked_at, id);
