-- The deployer's merge-request check `deploy/diff`: for an MR that changes an ops repo's
-- apps/<project>/ or a project's own deploy/, the manifests each affected environment would apply
-- at the MR's head against what runs now. One row per merge request (its newest head); the merge
-- request module reads it through the checks interface app.ts wires.
CREATE TABLE deploy_mr_checks (
  merge_request_id uuid PRIMARY KEY REFERENCES merge_requests (id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  head_sha text NOT NULL,
  name text NOT NULL DEFAULT 'deploy/diff',
  conclusion text NOT NULL CONSTRAINT deploy_mr_checks_conclusion_check CHECK (
    conclusion IN ('success', 'neutral', 'failure')
  ),
  summary text NOT NULL,
  -- [{project_id, project, environment, source, diff, error}]
  environments jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX deploy_mr_checks_project_idx ON deploy_mr_checks (project_id);
