-- observe_ensure_partition: two instances creating the same day partition at once. The advisory
-- lock serialises them, but the waiter's catalog lookup may predate the other's commit, so the
-- CREATE can still meet the partition it did not see: that is success, not an error.
CREATE OR REPLACE FUNCTION observe_ensure_partition(parent text, day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  part text := parent || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
  IF parent NOT IN ('log_entries', 'spans', 'metric_samples') THEN
    RAISE EXCEPTION 'not an observe table: %', parent;
  END IF;
  IF to_regclass(part) IS NOT NULL THEN
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('observe.partition.' || part));
  BEGIN
    EXECUTE format(
      'CREATE TABLE %s %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
      'IF NOT EXISTS', part, parent,
      (day::timestamp AT TIME ZONE 'UTC'),
      ((day + 1)::timestamp AT TIME ZONE 'UTC')
    );
  EXCEPTION WHEN duplicate_table OR unique_violation THEN
    NULL;
  END;
END;
$$;
