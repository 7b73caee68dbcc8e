-- Per-project pipeline numbers (#42 in a project), allocated from projects.next_pipeline_number in
-- the creating transaction like issue and merge request numbers.
ALTER TABLE projects ADD COLUMN next_pipeline_number integer NOT NULL DEFAULT 1
  CONSTRAINT projects_next_pipeline_number_check CHECK (next_pipeline_number >= 1);

ALTER TABLE pipelines ADD COLUMN number integer NULL;

-- Existing pipelines are numbered per project in the order they were created.
UPDATE pipelines SET number = numbered.n
FROM (
  SELECT id, row_number() OVER (PARTITION BY project_id ORDER BY created_at, id) AS n FROM pipelines
) AS numbered
WHERE pipelines.id = numbered.id;

UPDATE projects SET next_pipeline_number = counted.next
FROM (SELECT project_id, max(number) + 1 AS next FROM pipelines GROUP BY project_id) AS counted
WHERE projects.id = counted.project_id;

ALTER TABLE pipelines ALTER COLUMN number SET NOT NULL;
ALTER TABLE pipelines ADD CONSTRAINT pipelines_project_id_number_key UNIQUE (project_id, number);
ALTER TABLE pipelines ADD CONSTRAINT pipelines_number_check CHECK (number >= 1);
