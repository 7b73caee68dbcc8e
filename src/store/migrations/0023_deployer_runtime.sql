-- Deployer runtime state: who asked for the current desired state, which history entry a manual
-- rollback targets, and where the reconciler last put the version that serves (target, release,
-- port, applied manifests) so a restarted instance and the diff see what runs now.
ALTER TABLE deployments
  ADD COLUMN requested_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  ADD COLUMN rollback_to uuid NULL REFERENCES deployment_history (id) ON DELETE SET NULL,
  ADD COLUMN runtime jsonb NOT NULL DEFAULT '{}';

-- The refs and rendered manifests each history entry applied (rollback redeploys exactly these).
ALTER TABLE deployment_history
  ADD COLUMN manifests text NULL,
  ADD COLUMN values_override jsonb NOT NULL DEFAULT '{}';

CREATE INDEX deployments_lease_idx ON deployments (lease_expires_at) WHERE lease_holder IS NOT NULL;
