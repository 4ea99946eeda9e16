-- Policy, roles, enrollment, devices, API keys and per-user policy versions.

-- One row per organisation: its default policy (JSON of the policy override) and its rules.
CREATE TABLE org_settings (
    org_id                     TEXT PRIMARY KEY REFERENCES orgs(id),
    default_policy             TEXT NOT NULL,
    -- what agents do after the validity deadline: 'keep_last' or 'lockdown'
    offline_rule               TEXT NOT NULL,
    offline_grace_seconds      BIGINT NOT NULL,
    -- 1: removal from the last synced group deprovisions the user
    deprovision_without_groups BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);

CREATE TABLE group_policies (
    group_id   TEXT PRIMARY KEY REFERENCES scim_groups(id),
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    policy     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE group_roles (
    group_id   TEXT PRIMARY KEY REFERENCES scim_groups(id),
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    role       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE enroll_tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    prefix        TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX enroll_tokens_org ON enroll_tokens(org_id);

CREATE TABLE devices (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id),
    user_id           TEXT NOT NULL REFERENCES users(id),
    credential_sha256 TEXT NOT NULL UNIQUE,
    hostname          TEXT NOT NULL,
    os                TEXT NOT NULL,
    agent_version     TEXT NOT NULL,
    enrolled_at       BIGINT NOT NULL,
    last_seen_at      BIGINT,
    applied_version   BIGINT,
    last_error        TEXT,
    revoked_at        BIGINT,
    revoked_reason    TEXT,
    wiped_at          BIGINT
);
CREATE INDEX devices_user ON devices(user_id);

-- API keys, encrypted with the control plane's secrets key. group_key is '' for the org key.
CREATE TABLE api_keys (
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    group_key  TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, group_key)
);

-- The effective policy last computed for each user. version only grows; change_seq orders
-- every change across the store so other processes and replicas can catch up from a cursor.
CREATE TABLE user_policies (
    user_id       TEXT PRIMARY KEY REFERENCES users(id),
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    version       BIGINT NOT NULL,
    policy_sha256 TEXT NOT NULL,
    policy        TEXT NOT NULL,
    api_key_ref   TEXT,
    change_seq    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX user_policies_change_seq ON user_policies(change_seq);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('policy_change', 0);
