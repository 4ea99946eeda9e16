-- The admin API: role-scoped tokens for automation, and where each audited change came from.

-- Admin API tokens: labelled, scoped to one role, stored only as a SHA-256 hash of the secret.
CREATE TABLE admin_api_tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    label         TEXT NOT NULL,
    -- 'admin', 'security' or 'read-only'
    role          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    -- the audit name of whoever created it
    created_by    TEXT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX admin_api_tokens_org ON admin_api_tokens(org_id, created_at);

-- The source address of a change made through the console or the API ('' for the CLI and
-- the control plane itself).
ALTER TABLE audit_events ADD COLUMN source TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_events_org_actor ON audit_events(org_id, actor, at);
CREATE INDEX audit_events_org_action ON audit_events(org_id, action, at);

-- How long the audit trail keeps events (a background job deletes older ones).
ALTER TABLE org_settings ADD COLUMN audit_retention_days BIGINT NOT NULL DEFAULT 90;
