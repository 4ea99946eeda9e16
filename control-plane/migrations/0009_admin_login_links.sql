-- One-time, short-lived links that sign in to the console as owner: the first setup before the
-- organisation's IdP is connected, and the break-glass path. Only the SHA-256 of the secret is
-- kept; a link works once.
CREATE TABLE admin_login_links (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
