-- Key custody: how agents deliver the API key to Claude Code, where their relay forwards, and
-- the usage the relays report.

-- 'helper': apiKeyHelper prints the key; 'proxy': the agent keeps the key and relays requests.
ALTER TABLE org_settings ADD COLUMN key_delivery TEXT NOT NULL DEFAULT 'helper';
-- The relay's upstream; '' is the Anthropic API.
ALTER TABLE org_settings ADD COLUMN upstream_url TEXT NOT NULL DEFAULT '';

-- Cumulative counters per device, counter epoch, UTC day and model, as the agent reported them
-- (the largest value seen wins: reports are idempotent and a lost one is repaired by the next).
CREATE TABLE usage_counters (
    device_id     TEXT NOT NULL REFERENCES devices(id),
    epoch         TEXT NOT NULL,
    day           BIGINT NOT NULL,
    model         TEXT NOT NULL,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    requests      BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_creation_input_tokens BIGINT NOT NULL,
    cache_read_input_tokens     BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (device_id, epoch, day, model)
);
CREATE INDEX usage_counters_org_day ON usage_counters(org_id, day);
