-- Observe II: alert evaluation (comparison operators, anti-flapping, silences, recipients) and
-- shareable saved searches.

-- The query language has six comparisons; the rule keeps the parsed one beside the expression.
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_condition_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_condition_check
  CHECK (condition IN ('gt', 'gte', 'lt', 'lte', 'eq', 'ne', 'absent'));

-- Anti-flapping: a firing rule resolves only after its condition has been clear for resolve_seconds
-- without interruption (clear_since: when it last became clear while firing).
ALTER TABLE alert_rules
  ADD COLUMN resolve_seconds integer NOT NULL DEFAULT 60
    CONSTRAINT alert_rules_resolve_seconds_check CHECK (resolve_seconds >= 0),
  ADD COLUMN clear_since timestamptz NULL,
  -- A silence mutes notifications until then; evaluation and alert_events go on.
  ADD COLUMN silenced_until timestamptz NULL,
  ADD COLUMN silence_comment text NOT NULL DEFAULT '',
  -- Who is told besides the creator and the project owner.
  ADD COLUMN recipient_ids uuid[] NOT NULL DEFAULT '{}';

-- Whether the transition was announced (alert.fired / alert.resolved) or muted by a silence.
ALTER TABLE alert_events ADD COLUMN silenced boolean NOT NULL DEFAULT false;

CREATE INDEX alert_rules_enabled_evaluated_idx ON alert_rules (last_evaluated_at NULLS FIRST) WHERE is_enabled;

-- Saved searches: private to their owner, or shared with everyone who can read the project (the link
-- /api/observe/saved-searches/:id then opens for them).
ALTER TABLE saved_searches
  ADD COLUMN visibility text NOT NULL DEFAULT 'private'
    CONSTRAINT saved_searches_visibility_check CHECK (visibility IN ('private', 'project')),
  ADD COLUMN description text NOT NULL DEFAULT '';
ALTER TABLE saved_searches ADD CONSTRAINT saved_searches_shared_project_check
  CHECK (visibility = 'private' OR project_id IS NOT NULL);
CREATE INDEX saved_searches_user_created_idx ON saved_searches (user_id, created_at DESC);
