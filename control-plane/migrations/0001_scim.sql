-- Organisations, SCIM credentials, users, groups, memberships and the audit trail.
-- Portable DDL: the same file migrates SQLite and PostgreSQL. Times are microseconds since
-- the Unix epoch (BIGINT), booleans are 0/1 BIGINTs, ids are TEXT.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE scim_tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    label         TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX scim_tokens_org ON scim_tokens(org_id);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    user_name     TEXT NOT NULL,
    -- lower-cased userName: userName is case-insensitive (RFC 7643 §4.1.1)
    user_name_key TEXT NOT NULL,
    external_id   TEXT,
    active        BIGINT NOT NULL,
    -- Palisade role named by roles[primary eq true].value, if any
    primary_role  TEXT,
    -- the SCIM attribute document, opaque to everything but the SCIM edge
    attributes    TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    -- set by SCIM DELETE: the row stays for the audit history
    deleted_at    BIGINT
);
CREATE UNIQUE INDEX users_live_user_name ON users(org_id, user_name_key) WHERE deleted_at IS NULL;
CREATE INDEX users_org_external_id ON users(org_id, external_id);
CREATE INDEX users_org_order ON users(org_id, created_at, id);

CREATE TABLE scim_groups (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    display_name     TEXT NOT NULL,
    display_name_key TEXT NOT NULL,
    external_id      TEXT,
    attributes       TEXT NOT NULL,
    version          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    deleted_at       BIGINT
);
CREATE UNIQUE INDEX scim_groups_live_display_name ON scim_groups(org_id, display_name_key) WHERE deleted_at IS NULL;
CREATE INDEX scim_groups_org_external_id ON scim_groups(org_id, external_id);
CREATE INDEX scim_groups_org_order ON scim_groups(org_id, created_at, id);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES scim_groups(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    added_at  BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    at            BIGINT NOT NULL,
    -- "scim-token:<id>" or "cli"
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_events_org_at ON audit_events(org_id, at);
CREATE INDEX audit_events_resource ON audit_events(resource_id);
