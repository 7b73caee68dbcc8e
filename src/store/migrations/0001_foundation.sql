-- Foundation: the shared updated_at trigger function and the scheduler's lease table.
-- Every migration runs inside one transaction (the migrator wraps it); objects are created in the
-- current search_path so tests can run each migration set in their own schema.

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

-- One row per background loop that must run on a single instance at a time (alert evaluation,
-- cron schedules, rotation, purges). A holder renews its lease before expires_at; anyone may take
-- over an expired lease with an UPDATE ... WHERE expires_at < now().
CREATE TABLE scheduler_leases (
  name text PRIMARY KEY,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL
);
