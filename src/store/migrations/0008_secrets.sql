-- Secrets: AES-256-GCM ciphertexts (version byte || nonce || ciphertext || tag), project-scoped or
-- global (project_id NULL). Values never leave through the API; only metadata is listed.

CREATE TABLE secrets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL CONSTRAINT secrets_name_check CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,254}$'),
  -- 64 KiB of plaintext plus the 1 + 12 + 16 bytes of framing.
  ciphertext bytea NOT NULL CONSTRAINT secrets_ciphertext_check CHECK (octet_length(ciphertext) <= 65536 + 29),
  -- Master-key version the ciphertext was sealed with (key rotation re-encrypts and bumps it).
  key_version integer NOT NULL DEFAULT 1 CONSTRAINT secrets_key_version_check CHECK (key_version >= 1),
  scope text NOT NULL DEFAULT 'all'
    CONSTRAINT secrets_scope_check CHECK (scope IN ('pipeline', 'agent', 'deploy', 'all')),
  -- Incremented on every update of the value.
  version integer NOT NULL DEFAULT 1 CONSTRAINT secrets_version_check CHECK (version >= 1),
  created_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  updated_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT secrets_project_name_key UNIQUE (project_id, name)
);
-- UNIQUE (project_id, name) does not stop two global secrets of one name (NULLs are distinct).
CREATE UNIQUE INDEX secrets_global_name_key ON secrets (name) WHERE project_id IS NULL;
CREATE TRIGGER secrets_set_updated_at BEFORE UPDATE ON secrets
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
