-- How often each device reported restoring tampered settings, and when last: the Devices page
-- shows it without scanning the audit trail. Counted as reports arrive (coalesced reports
-- add their whole tally).
ALTER TABLE devices ADD COLUMN tamper_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_tamper_at BIGINT;
