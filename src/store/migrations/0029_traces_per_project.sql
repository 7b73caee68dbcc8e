-- A trace's summary row per (trace, project): a trace id is not a secret (services pass it on to the
-- services they call, and any writer may name any id), so spans of several projects may share one.
-- One row for all of them let a project's spans rename and recount another project's trace, and
-- showed one project's root span in the other's trace list. Existing rows stay as they are.
ALTER TABLE traces DROP CONSTRAINT traces_trace_id_key;
CREATE UNIQUE INDEX traces_trace_project_key ON traces (trace_id, project_id) NULLS NOT DISTINCT;
