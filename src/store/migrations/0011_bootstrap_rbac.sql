-- Bootstrap RBAC: the 13 permissions and the system roles with their grants. Idempotent (safe to
-- re-run, and two instances migrating together are serialised by the migrator's advisory lock).
-- The bootstrap admin user is created by the application (its password comes from configuration).

INSERT INTO permissions (name, description) VALUES
  ('project:read', 'Read projects, code, issues, merge requests and pipelines'),
  ('project:write', 'Push code, edit issues and merge requests, run pipelines'),
  ('project:delete', 'Archive or delete projects'),
  ('agent:run', 'Start and steer agent sessions'),
  ('deploy:read', 'Read deployments and their history'),
  ('deploy:promote', 'Change, roll back or stop deployments'),
  ('observe:read', 'Query logs, traces and metrics'),
  ('observe:write', 'Ingest telemetry'),
  ('alert:manage', 'Create, change and delete alert rules'),
  ('secret:read', 'List secret names and metadata'),
  ('secret:write', 'Create, update and delete secrets'),
  ('admin:users', 'Manage users, roles and role bindings'),
  ('admin:delegate', 'Delegate permissions to other users')
ON CONFLICT (name) DO NOTHING;

INSERT INTO roles (name, description, is_system) VALUES
  ('admin', 'Every permission', true),
  ('developer', 'Work on projects, run agents, read deployments, telemetry and secrets', true),
  ('ops', 'Operate deployments, telemetry and alerts', true),
  ('agent', 'Agent identities; holds nothing by default, acts only through delegations', true),
  ('viewer', 'Read projects, deployments and telemetry', true)
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
SELECT r.id, p.name
FROM roles r
CROSS JOIN permissions p
WHERE r.name = 'admin'
  AND p.name IN (
    'project:read', 'project:write', 'project:delete', 'agent:run', 'deploy:read', 'deploy:promote',
    'observe:read', 'observe:write', 'alert:manage', 'secret:read', 'secret:write', 'admin:users',
    'admin:delegate'
  )
ON CONFLICT DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
SELECT r.id, grants.permission
FROM (VALUES
  ('developer', 'project:read'),
  ('developer', 'project:write'),
  ('developer', 'agent:run'),
  ('developer', 'deploy:read'),
  ('developer', 'observe:read'),
  ('developer', 'secret:read'),
  ('ops', 'deploy:read'),
  ('ops', 'deploy:promote'),
  ('ops', 'observe:read'),
  ('ops', 'observe:write'),
  ('ops', 'alert:manage'),
  ('ops', 'secret:read'),
  ('viewer', 'project:read'),
  ('viewer', 'observe:read'),
  ('viewer', 'deploy:read')
) AS grants (role_name, permission)
JOIN roles r ON r.name = grants.role_name
ON CONFLICT DO NOTHING;
