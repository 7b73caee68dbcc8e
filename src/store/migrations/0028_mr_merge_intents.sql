-- A merge through the API moves the target branch in git, then records the merge in the database:
-- two stores, no shared transaction. The intent is written (committed) just before the branch is
-- swapped and removed in the transaction that records the merge, so a crash in between leaves a row
-- that the recovery loop completes (the branch holds the merge commit: record it, announce it) or
-- drops (the swap never happened).
CREATE TABLE mr_merge_intents (
  mr_id uuid PRIMARY KEY REFERENCES merge_requests (id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  target_branch text NOT NULL,
  target_sha text NOT NULL,
  new_sha text NOT NULL,
  head_sha text NOT NULL,
  strategy text NOT NULL,
  merged_by uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The audit actor of the request ({id, name, ip}) and the merger's name for the push event.
  actor jsonb NOT NULL,
  merged_by_name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
