-- Notifications: one row per recipient and channel, written in the transaction of the domain
-- change (an outbox); a worker delivers due 'pending' rows and retries with backoff.

CREATE TABLE notifications (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id uuid NULL REFERENCES projects (id) ON DELETE CASCADE,
  -- Event type, e.g. pipeline.failed, mr.review_requested, session.finished, alert.fired.
  type text NOT NULL CONSTRAINT notifications_type_check CHECK (type <> ''),
  subject text NOT NULL,
  body text NOT NULL DEFAULT '',
  channel text NOT NULL CONSTRAINT notifications_channel_check CHECK (channel IN ('in_app', 'email', 'webhook')),
  status text NOT NULL DEFAULT 'pending'
    CONSTRAINT notifications_status_check CHECK (status IN ('pending', 'sent', 'read', 'failed')),
  -- What the notification is about (pipeline, merge_request, deployment, agent_session, alert_event, ...).
  ref_type text NULL,
  ref_id text NULL,
  -- Address used for delivery (e-mail address or webhook URL), kept for the delivery record.
  recipient text NULL,
  -- Coalescing: while a row with the same (user, channel, group_key) is pending, further events
  -- bump group_count instead of adding rows, and the worker sends one digest.
  group_key text NULL,
  group_count integer NOT NULL DEFAULT 1 CONSTRAINT notifications_group_count_check CHECK (group_count >= 1),
  attempts integer NOT NULL DEFAULT 0 CONSTRAINT notifications_attempts_check CHECK (attempts >= 0),
  next_attempt_at timestamptz NULL,
  error text NULL,
  sent_at timestamptz NULL,
  read_at timestamptz NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user_created_idx ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (user_id)
  WHERE channel = 'in_app' AND status IN ('pending', 'sent');
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at)
  WHERE status = 'pending' AND channel <> 'in_app';
CREATE INDEX notifications_project_created_idx ON notifications (project_id, created_at DESC)
  WHERE project_id IS NOT NULL;
CREATE UNIQUE INDEX notifications_pending_group_key ON notifications (user_id, channel, group_key)
  WHERE status = 'pending' AND group_key IS NOT NULL;
CREATE TRIGGER notifications_set_updated_at BEFORE UPDATE ON notifications
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Which event types a user wants on which channels. No row for a type = the defaults (in-app for
-- everything, e-mail for failures and alerts); event_type '*' overrides the defaults for all types.
CREATE TABLE notification_preferences (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  event_type text NOT NULL CONSTRAINT notification_preferences_event_type_check CHECK (event_type <> ''),
  channels text[] NOT NULL DEFAULT '{}' CONSTRAINT notification_preferences_channels_check CHECK (
    channels <@ ARRAY['in_app', 'email', 'webhook']::text[]
  ),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT notification_preferences_user_event_key UNIQUE (user_id, event_type)
);
CREATE TRIGGER notification_preferences_set_updated_at BEFORE UPDATE ON notification_preferences
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- User-level endpoints for the 'webhook' channel (project-level ones are project webhooks).
CREATE TABLE notification_webhooks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  url text NOT NULL CONSTRAINT notification_webhooks_url_check CHECK (url ~* '^https?://'),
  -- HMAC signing secret encrypted with the master key; NULL = unsigned.
  secret_ciphertext bytea NULL,
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_webhooks_user_id_idx ON notification_webhooks (user_id);
CREATE TRIGGER notification_webhooks_set_updated_at BEFORE UPDATE ON notification_webhooks
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
