-- The one change mechanism for policy inputs. Every write that may change someone's effective
-- policy or credentials (group policy, org defaults and settings, role map, API keys,
-- membership, activation) inserts a row here inside its own transaction, numbered on the
-- store-wide change sequence (the `policy_change` counter). A control-plane process claims
-- pending rows for a short lease, recomputes the users they name and deletes them in the
-- transaction that stores the new versions; a lease that ran out (its process died) is claimed
-- again, so a committed change is never lost and never needs a caller to recompute by hand.
CREATE TABLE policy_input_changes (
    seq           BIGINT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs(id),
    -- 'org': every user of org_id; 'group': the members of the group in subject;
    -- 'users': the user ids in subject (a JSON array)
    scope         TEXT NOT NULL,
    subject       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    claimed_by    TEXT,
    claimed_until BIGINT
);
CREATE INDEX policy_input_changes_claim ON policy_input_changes(claimed_until, seq);

-- What the agent receives besides the policy and decides whether a version is new: the org's
-- offline rule and grace, so that changing them reaches connected agents as a new version.
ALTER TABLE user_policies ADD COLUMN delivery TEXT NOT NULL DEFAULT '';
