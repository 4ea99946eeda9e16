-- Proxy key delivery becomes the default for new organisations. An organisation that existed
-- before this release keeps the helper delivery it had (its fleet may still run agents older
-- than the relay, which would ignore `proxy`): every organisation without a settings row gets
-- one that says so explicitly, with the defaults it was using. An admin switches with
-- `org settings --key-delivery proxy` once the fleet runs this release.
INSERT INTO org_settings (org_id, default_policy, offline_rule, offline_grace_seconds,
                          deprovision_without_groups, updated_at, trust_mdm_identity,
                          key_delivery, upstream_url)
SELECT id, '{}', 'keep_last', 604800, 0, 0, 0, 'helper', ''
FROM orgs
WHERE id NOT IN (SELECT org_id FROM org_settings);
