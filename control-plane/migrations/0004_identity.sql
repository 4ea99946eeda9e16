-- Proven identity: OpenID Connect sign-in per organisation, web sessions, interactive device
-- sign-in grants, per-user activation codes, verified devices and idempotent MDM enrollment.

-- The organisation's IdP as an OpenID provider; the control plane is the relying party.
CREATE TABLE oidc_configs (
    org_id                TEXT PRIMARY KEY REFERENCES orgs(id),
    issuer                TEXT NOT NULL,
    client_id             TEXT NOT NULL,
    -- encrypted with the secrets key (XChaCha20-Poly1305, base64)
    client_secret         TEXT NOT NULL,
    -- which claim names the person: email | preferred_username | sub | upn
    claim                 TEXT NOT NULL,
    -- which SCIM attribute it is matched against: userName | email | externalId
    match_attribute       TEXT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- Browser sessions (tower-sessions records, JSON).
CREATE TABLE web_sessions (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);

-- The primary email of each user, lower-cased, for sign-in matching ('' when the user has
-- none; NULL until backfilled from the SCIM document at start).
ALTER TABLE users ADD COLUMN primary_email_key TEXT;
CREATE INDEX users_email ON users(org_id, primary_email_key);
CREATE INDEX users_external_id_match ON users(org_id, external_id);

-- How each device was enrolled, whether its person is proven, and the hash of its
-- installation key (a secret held in the agent's root-only state) that makes re-enrollment
-- of the same machine idempotent.
ALTER TABLE devices ADD COLUMN enroll_method TEXT;
ALTER TABLE devices ADD COLUMN verified BIGINT NOT NULL DEFAULT 1;
ALTER TABLE devices ADD COLUMN verified_at BIGINT;
ALTER TABLE devices ADD COLUMN install_key_sha256 TEXT;
CREATE INDEX devices_install_key ON devices(org_id, install_key_sha256);

-- Interactive sign-in (RFC 8628-shaped): the agent holds the device code, the person types or
-- follows the user code. status: pending | approved | denied | consumed.
CREATE TABLE device_grants (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id),
    device_code_sha256  TEXT NOT NULL UNIQUE,
    user_code           TEXT NOT NULL,
    install_key_sha256  TEXT NOT NULL,
    -- set when an enrolled (unverified) device asks its person to confirm
    device_id           TEXT,
    hostname            TEXT NOT NULL,
    os                  TEXT NOT NULL,
    agent_version       TEXT NOT NULL,
    source_addr         TEXT NOT NULL,
    status              TEXT NOT NULL,
    user_id             TEXT,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    decided_at          BIGINT,
    last_poll_at        BIGINT
);
CREATE INDEX device_grants_user_code ON device_grants(user_code);

-- Per-user activation codes (invitations). Stored as SHA-256; single use.
CREATE TABLE invites (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id),
    user_id        TEXT NOT NULL REFERENCES users(id),
    prefix         TEXT NOT NULL,
    code_sha256    TEXT NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    used_device_id TEXT,
    revoked_at     BIGINT
);
CREATE INDEX invites_org ON invites(org_id);

-- 1: a device enrolled with the MDM fleet token is trusted as its claimed person at once.
ALTER TABLE org_settings ADD COLUMN trust_mdm_identity BIGINT NOT NULL DEFAULT 0;
