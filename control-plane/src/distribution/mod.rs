//! Policy distribution: recomputes users' effective policies when their inputs change, stores
//! each change as a new per-user version, and wakes the agent streams of the affected users.
//!
//! Changes reach it three ways: events of this process's store commits (SCIM), direct calls (the
//! CLI recomputes what it changed), and a catch-up cursor over the stored change sequence for
//! commits made by other processes (the CLI, other replicas). The stored version is the truth;
//! every wake-up only says "look again".

pub mod hub;

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::crypto::SecretsKey;
use crate::store::{
    ComputedPolicy, Store, StoreError, StoreEvent, StoredUserPolicy, UserPolicyInputs,
};
use hub::{Hub, Wakeup};
use palisade_policy::{effective, GroupPolicy, Policy};

/// How often the catch-up cursor looks for changes committed by other processes on SQLite
/// (whose other writers are CLI processes on the same machine).
pub const CATCH_UP_INTERVAL: Duration = Duration::from_millis(100);

/// On PostgreSQL, where `LISTEN` wakes the cursor, how often it also looks in case a
/// notification was lost (a reconnect of the listener's connection).
pub const LISTEN_FALLBACK_INTERVAL: Duration = Duration::from_secs(1);

/// The next change notification, or never when there is no listener.
async fn next_change(
    listener: &mut Option<crate::store::ChangeListener>,
) -> Result<(), crate::store::StoreError> {
    match listener {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

/// Recomputes and wakes. Cheap to clone.
#[derive(Clone)]
pub struct Distributor {
    pub store: Store,
    pub hub: Hub,
    pub secrets: Option<SecretsKey>,
}

/// The effective policy of a user and the API key reference it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub policy: Policy,
    pub canonical: String,
    pub sha256: String,
    pub api_key_ref: Option<String>,
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
    })
}

impl Distributor {
    pub fn new(store: Store, secrets: Option<SecretsKey>) -> Distributor {
        Distributor {
            store,
            hub: Hub::default(),
            secrets,
        }
    }

    /// Recomputes one user; stores a new version if the policy changed and wakes the user's
    /// streams. Deactivated and deleted users get no new versions.
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

    /// Recomputes users and stores every change in one transaction, then wakes the streams of
    /// the users whose policy changed. Deactivated and deleted users are skipped.
    pub async fn recompute_batch(
        &self,
        user_ids: &[String],
    ) -> Result<Vec<(StoredUserPolicy, bool)>, StoreError> {
        let mut computed = Vec::with_capacity(user_ids.len());
        for inputs in self.store.user_policy_inputs_many(user_ids).await? {
            if !inputs.active {
                continue;
            }
            let c = compute(&inputs)?;
            let policy: Value = serde_json::from_str(&c.canonical)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            computed.push((
                inputs.org_id,
                inputs.user_id,
                policy,
                c.sha256,
                c.api_key_ref,
            ));
        }
        let refs: Vec<ComputedPolicy<'_>> = computed
            .iter()
            .map(|(org_id, user_id, policy, sha, key)| ComputedPolicy {
                org_id,
                user_id,
                policy,
                policy_sha256: sha,
                api_key_ref: key.as_deref(),
            })
            .collect();
        let stored = self.store.store_user_policies(&refs).await?;
        for (s, changed) in &stored {
            if *changed {
                self.hub.wake(&s.user_id, Wakeup::PolicyChanged);
            }
        }
        Ok(stored)
    }

    /// Recomputes users in batches, logging (not failing on) errors. Returns how many got a
    /// new version.
    pub async fn recompute_users(&self, user_ids: &[String]) -> usize {
        let mut changed = 0;
        for chunk in user_ids.chunks(1000) {
            match self.recompute_batch(chunk).await {
                Ok(stored) => changed += stored.iter().filter(|(_, c)| *c).count(),
                Err(e) => {
                    tracing::error!(error = %e, users = chunk.len(), "could not recompute users' policies")
                }
            }
        }
        changed
    }

    /// Handles this process's store events until the store's channel closes. Events that
    /// queued up meanwhile are handled as one batch: one lookup of which users have policies.
    pub async fn run_events(self) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let mut events = self.store.subscribe();
        loop {
            let first = match events.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    // Missed events: re-check every connected user against the store (agents
                    // that are offline are recomputed when they reconnect).
                    tracing::warn!(
                        missed = n,
                        "store events lagged; re-checking connected users"
                    );
                    let users = self.hub.connected_users();
                    self.recompute_users(&users).await;
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let mut touched: Vec<String> = Vec::new();
            let mut next = Some(first);
            while let Some(event) = next.take() {
                match event {
                    StoreEvent::UsersTouched { user_ids, .. } => touched.extend(user_ids),
                    StoreEvent::Deprovisioned {
                        user_id,
                        reason,
                        device_ids,
                        ..
                    } => {
                        tracing::info!(%user_id, %reason, devices = device_ids.len(), "deprovisioned: telling connected agents to wipe");
                        self.hub.wake(&user_id, Wakeup::Deprovision { reason });
                    }
                }
                if touched.len() < 5000 {
                    match events.try_recv() {
                        Ok(e) => next = Some(e),
                        Err(TryRecvError::Lagged(_)) => touched.extend(self.hub.connected_users()),
                        Err(TryRecvError::Empty | TryRecvError::Closed) => {}
                    }
                }
            }
            if touched.is_empty() {
                continue;
            }
            touched.sort();
            touched.dedup();
            // Users without an enrolled device have no stored policy to keep current;
            // enrollment and every stream connect compute theirs.
            match self.store.users_with_policies(&touched).await {
                Ok(relevant) => {
                    self.recompute_users(&relevant).await;
                }
                Err(e) => tracing::error!(error = %e, "could not read which users have policies"),
            }
        }
    }

    /// Follows the store's change feed so that changes committed by other processes (the CLI,
    /// other replicas) reach this process's connected agents: new policy versions wake their
    /// users' streams, revoked devices are told to wipe. On PostgreSQL a `LISTEN` on the feed's
    /// channel wakes it at once, with a slow poll in case a notification was lost; on SQLite it
    /// polls every [`CATCH_UP_INTERVAL`].
    pub async fn run_catch_up(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut cursor = match self.store.latest_policy_change_seq().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the change sequence");
                0
            }
        };
        let mut listener = match self.store.listen_for_changes().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for changes: polling only");
                None
            }
        };
        let interval = if listener.is_some() {
            LISTEN_FALLBACK_INTERVAL
        } else {
            CATCH_UP_INTERVAL
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                notified = next_change(&mut listener) => {
                    if let Err(e) = notified {
                        tracing::warn!(error = %e, "change listener failed: polling only until restart");
                        listener = None;
                    }
                }
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            cursor = self.catch_up(cursor).await;
        }
    }

    /// One catch-up step from `cursor`; returns the new cursor.
    async fn catch_up(&self, cursor: i64) -> i64 {
        const BATCH: i64 = 10_000;
        let latest = match self.store.latest_policy_change_seq().await {
            Ok(latest) if latest > cursor => latest,
            Ok(_) => return cursor,
            Err(e) => {
                tracing::warn!(error = %e, "catch-up read failed");
                return cursor;
            }
        };
        let (policies, revoked) = match tokio::try_join!(
            self.store.user_policies_changed_since(cursor, BATCH),
            self.store.devices_revoked_since(cursor, BATCH),
        ) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "catch-up read failed");
                return cursor;
            }
        };
        // A full batch may stop short of `latest`: go no further than what both reads covered.
        let mut upto = latest;
        if policies.len() as i64 == BATCH {
            upto = upto.min(policies.last().map_or(latest, |p| p.change_seq));
        }
        if revoked.len() as i64 == BATCH {
            upto = upto.min(revoked.last().map_or(latest, |r| r.seq));
        }
        for r in revoked.iter().filter(|r| r.seq <= upto) {
            if self.hub.is_connected(&r.user_id) {
                tracing::info!(user_id = %r.user_id, device_id = %r.device_id, reason = %r.reason, "revoked by another process: telling the agent to wipe");
            }
            self.hub.wake_devices(
                &r.user_id,
                &[r.device_id.as_str()],
                Wakeup::Deprovision {
                    reason: r.reason.clone(),
                },
            );
        }
        for p in policies.iter().filter(|p| p.change_seq <= upto) {
            self.hub.wake(&p.user_id, Wakeup::PolicyChanged);
        }
        upto
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
