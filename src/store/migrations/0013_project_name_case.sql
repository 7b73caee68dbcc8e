-- Project names keep the case they were given ("Hello" stays "Hello", as Gitea does) and are unique
-- per owner ignoring case, so "hello" then conflicts and every lookup can ignore case. Rename
-- redirects follow the same rule: one old name (in any case) leads to one project.
--
-- Existing data cannot violate the new indexes: until now projects_name_slug allowed lower-case
-- names only, and redirect names are former project names, so lower(name) is name for every row
-- and the old (owner_id, name) uniqueness is the new one.
ALTER TABLE projects DROP CONSTRAINT projects_name_slug;
ALTER TABLE projects ADD CONSTRAINT projects_name_slug CHECK (
  name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' AND name !~* '\.git$'
);

-- Nothing refers to the case-sensitive constraints (no foreign key, no ON CONFLICT target): the
-- case-insensitive indexes replace them.
ALTER TABLE projects DROP CONSTRAINT projects_owner_name_key;
CREATE UNIQUE INDEX projects_owner_name_lower_key ON projects (owner_id, lower(name));

ALTER TABLE project_redirects DROP CONSTRAINT project_redirects_owner_name_key;
CREATE UNIQUE INDEX project_redirects_owner_name_lower_key ON project_redirects (owner_id, lower(name));
