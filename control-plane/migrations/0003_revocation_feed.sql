-- Device revocations join the store-wide change sequence (the `policy_change` counter, which
-- now orders policy versions and revocations alike), so that every replica, not only the one
-- that deprovisioned the user, tells its connected agents to wipe.
ALTER TABLE devices ADD COLUMN revoked_seq BIGINT;
CREATE INDEX devices_revoked_seq ON devices(revoked_seq);
