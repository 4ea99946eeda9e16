//! Policy distribution: recomputes users' effective policies when their inputs change, stores
//! each change as a new per-user version, and wakes the agent streams of the affected users.
//!
//! One mechanism carries every change. A write of policy inputs records what it touched in
//! the store's change outbox inside its own transaction (`store::changes`); [`inputs`] claims
//! those records, recomputes the users they name and stores new versions; [`feed`] follows the
//! store-wide change sequence and wakes the streams of users with a new version or a revoked
//! device — whichever process (SCIM, the CLI, another replica) made the change. The stored
//! version is the truth; every wake-up only says "look again".

pub mod feed;
pub mod hub;
pub mod inputs;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::crypto::SecretsKey;
use crate::store::{ComputedPolicy, Store, StoreError, StoredUserPolicy, UserPolicyInputs};
use hub::Hub;
use palisade_policy::{effective, GroupPolicy, Policy};

/// How often the feed looks for changes committed by other processes on SQLite (whose other
/// writers are CLI processes on the same machine).
pub const CATCH_UP_INTERVAL: Duration = Duration::from_millis(100);

/// On PostgreSQL, where `LISTEN` wakes the feed, how often it also looks in case a
/// notification was lost (a reconnect of the listener's connection).
pub const LISTEN_FALLBACK_INTERVAL: Duration = Duration::from_secs(1);

/// Recomputes and wakes. Cheap to clone.
#[derive(Clone)]
pub struct Distributor {
    pub store: Store,
    pub hub: Hub,
    pub secrets: Option<SecretsKey>,
    /// Bumped by the feed when it sees the change sequence advance (another process wrote), so
    /// that the input-change worker looks for records to claim.
    feed_advanced: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The effective policy of a user and the API key reference it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub policy: Policy,
    pub canonical: String,
    pub sha256: String,
    pub api_key_ref: Option<String>,
    /// The organisation's delivery settings (offline rule and grace) the version carries.
    pub delivery: String,
}

/// A stored policy (schema 1 is migrated on read).
fn parse_override(v: &Value, what: &str) -> Result<Policy, StoreError> {
    Policy::from_value(v)
        .map(|loaded| loaded.policy)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A user's stored policy inputs as engine types: the organisation default and each group's
/// override with the group's displayName (the input of `effective` and `explain`).
pub fn overrides(inputs: &UserPolicyInputs) -> Result<(Policy, Vec<(String, Policy)>), StoreError> {
    let defaults = parse_override(&inputs.settings.default_policy, "default policy")?;
    let groups = inputs
        .groups
        .iter()
        .filter_map(|g| g.policy.as_ref().map(|p| (&g.display_name, p)))
        .map(|(name, p)| {
            Ok((
                name.clone(),
                parse_override(p, &format!("policy of group {name:?}"))?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((defaults, groups))
}

/// Computes a user's effective policy from its inputs (pure).
pub fn compute(inputs: &UserPolicyInputs) -> Result<Computed, StoreError> {
    let (defaults, overrides) = overrides(inputs)?;
    let groups: Vec<GroupPolicy<'_>> = overrides
        .iter()
        .map(|(g, p)| GroupPolicy {
            group: g,
            policy: p,
        })
        .collect();
    let policy = effective(&defaults, &groups);
    let canonical = policy.canonical_json();
    let sha256 = hex::encode(Sha256::digest(canonical.as_bytes()));
    // A group's key wins over the organisation's; among groups, the first by displayName.
    let api_key_ref = inputs
        .groups
        .iter()
        .find_map(|g| g.api_key_set_at.map(|t| format!("{}#{t}", g.group_id)))
        .or_else(|| inputs.org_api_key_set_at.map(|t| format!("#{t}")));
    Ok(Computed {
        policy,
        canonical,
        sha256,
        api_key_ref,
        delivery: inputs.settings.delivery(),
    })
}

/// [`compute`] in the form the store keeps.
fn compute_for_store(inputs: &UserPolicyInputs) -> Result<ComputedPolicy, StoreError> {
    let c = compute(inputs)?;
    Ok(ComputedPolicy {
        policy: serde_json::from_str(&c.canonical)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        policy_sha256: c.sha256,
        api_key_ref: c.api_key_ref,
        delivery: c.delivery,
    })
}

impl Distributor {
    pub fn new(store: Store, secrets: Option<SecretsKey>) -> Distributor {
        Distributor {
            store,
            hub: Hub::default(),
            secrets,
            feed_advanced: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Recomputes one user and stores a new version if the policy changed (the feed then wakes
    /// the user's streams). Deactivated and deleted users get no new versions.
    pub async fn recompute_user(
        &self,
        user_id: &str,
    ) -> Result<Option<(StoredUserPolicy, bool)>, StoreError> {
        Ok(self
            .recompute_batch(&[user_id.to_string()])
            .await?
            .into_iter()
            .next())
    }

    /// Recomputes users from inputs read in one transaction and stores every change in it.
    pub async fn recompute_batch(
        &self,
        user_ids: &[String],
    ) -> Result<Vec<(StoredUserPolicy, bool)>, StoreError> {
        self.store
            .recompute_policies(user_ids, compute_for_store)
            .await
    }

    /// The API key for a stored policy's reference, decrypted.
    pub async fn api_key_for(&self, org_id: &str, key_ref: Option<&str>) -> Option<String> {
        let key_ref = key_ref?;
        let secrets = self.secrets.as_ref()?;
        match self.store.api_key_ciphertext(org_id, key_ref).await {
            Ok(Some(ct)) => match secrets.decrypt(&ct) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(error = %e, "stored API key cannot be decrypted with the configured secrets key");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "reading an API key failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OrgSettings, UserGroupInput};
    use serde_json::json;

    fn inputs(groups: Vec<UserGroupInput>, org_key: bool) -> UserPolicyInputs {
        UserPolicyInputs {
            user_id: "u".into(),
            org_id: "o".into(),
            user_name: "a".into(),
            active: true,
            primary_role: None,
            settings: OrgSettings {
                default_policy: json!({"blocked_tools": ["WebFetch"]}),
                ..OrgSettings::default()
            },
            groups,
            org_api_key_set_at: org_key.then_some(5),
        }
    }

    fn group(id: &str, policy: Option<Value>, key: bool) -> UserGroupInput {
        UserGroupInput {
            group_id: id.into(),
            display_name: id.into(),
            policy,
            role: None,
            api_key_set_at: key.then_some(7),
        }
    }

    #[test]
    fn computes_policy_hash_and_key_reference() {
        let c = compute(&inputs(
            vec![group(
                "g1",
                Some(json!({"blocked_tools": ["Bash"], "security_level": "strict"})),
                false,
            )],
            true,
        ))
        .unwrap();
        // Stored schema-1 policies are migrated; the strict level's bundle is added.
        assert_eq!(
            c.canonical,
            r#"{"credentials":{"block_personal_keys":true},"permissions":{"deny":["Bash","WebFetch"],"disable_auto_mode":true,"disable_bypass_mode":true,"managed_rules_only":true},"plugins":{"disable_sideload_flags":true},"security_level":"strict"}"#
        );
        assert_eq!(c.api_key_ref.as_deref(), Some("#5"));
        let c2 = compute(&inputs(vec![group("g1", None, true)], true)).unwrap();
        assert_eq!(c2.api_key_ref.as_deref(), Some("g1#7"));
        assert_ne!(c.sha256, c2.sha256);
        let none = compute(&inputs(vec![], false)).unwrap();
        assert_eq!(none.api_key_ref, None);
        assert!(compute(&inputs(
            vec![group("g", Some(json!({"bogus": 1})), false)],
            false
        ))
        .is_err());
    }
}
