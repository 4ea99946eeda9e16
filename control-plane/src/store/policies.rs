//! Policy inputs and outputs: each organisation's settings and default policy, group policy
//! overrides, group → role mappings, encrypted API keys, and the per-user effective policy with
//! its ever-growing version. Policies are stored as opaque JSON: the policy engine interprets them.

use crate::domain::AuditAction;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::changes::{record_input_change, InputChange};
use super::{audit, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Actor, Micros};

/// What agents do when their policy's validity deadline passes without contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineRule {
    KeepLast,
    Lockdown,
}

impl OfflineRule {
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineRule::KeepLast => "keep_last",
            OfflineRule::Lockdown => "lockdown",
        }
    }
    pub fn parse(s: &str) -> Option<OfflineRule> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "keep_last" => Some(OfflineRule::KeepLast),
            "lockdown" => Some(OfflineRule::Lockdown),
            _ => None,
        }
    }
}

/// How agents give Claude Code the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyDelivery {
    /// `apiKeyHelper` prints the key (the developer's account can read it). Organisations
    /// created before proxy delivery keep it until an admin switches (migration 0007).
    Helper,
    /// The agent keeps the key and forwards Claude Code's requests through its local relay;
    /// the developer's account holds only a local token. The default.
    #[default]
    Proxy,
}

impl KeyDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyDelivery::Helper => "helper",
            KeyDelivery::Proxy => "proxy",
        }
    }
    pub fn parse(s: &str) -> Option<KeyDelivery> {
        match s.to_ascii_lowercase().as_str() {
            "helper" => Some(KeyDelivery::Helper),
            "proxy" => Some(KeyDelivery::Proxy),
            _ => None,
        }
    }
}

/// An organisation's policy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgSettings {
    pub default_policy: Value,
    pub offline_rule: OfflineRule,
    pub offline_grace_seconds: i64,
    pub deprovision_without_groups: bool,
    /// A device enrolled with the MDM fleet token is trusted as its claimed person at once.
    pub trust_mdm_identity: bool,
    /// How agents give Claude Code the key.
    pub key_delivery: KeyDelivery,
    /// Where agents' relays forward (`None`: the Anthropic API).
    pub upstream_url: Option<String>,
    /// How many days the audit trail keeps events.
    pub audit_retention_days: i64,
}

impl OrgSettings {
    /// The settings an agent receives beside its policy (the offline rule and grace, how the
    /// key is delivered and where the relay forwards): a change makes a new version, so
    /// connected agents learn of it at once.
    pub fn delivery(&self) -> String {
        format!(
            "offline={};grace={};key={};upstream={}",
            self.offline_rule.as_str(),
            self.offline_grace_seconds,
            self.key_delivery.as_str(),
            self.upstream_url.as_deref().unwrap_or("")
        )
    }
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            default_policy: json!({}),
            offline_rule: OfflineRule::KeepLast,
            offline_grace_seconds: 7 * 24 * 3600,
            deprovision_without_groups: false,
            trust_mdm_identity: false,
            key_delivery: KeyDelivery::default(),
            upstream_url: None,
            audit_retention_days: 90,
        }
    }
}

/// One group of a user, with what it contributes to the user's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct UserGroupInput {
    pub group_id: String,
    pub display_name: String,
    pub policy: Option<Value>,
    pub role: Option<String>,
    /// When the group's API key was set, if it has one (a rotation changes it).
    pub api_key_set_at: Option<Micros>,
}

/// Everything the policy engine needs to compute one user's effective policy.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPolicyInputs {
    pub user_id: String,
    pub org_id: String,
    pub user_name: String,
    pub active: bool,
    pub primary_role: Option<String>,
    pub settings: OrgSettings,
    pub groups: Vec<UserGroupInput>,
    /// When the organisation's API key was set, if it has one.
    pub org_api_key_set_at: Option<Micros>,
}

/// A user's freshly computed policy, to be stored if it differs from the stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputedPolicy {
    pub policy: Value,
    pub policy_sha256: String,
    pub api_key_ref: Option<String>,
    /// What else the agent receives with the policy ([`OrgSettings::delivery`]).
    pub delivery: String,
}

/// The effective policy last stored for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUserPolicy {
    pub user_id: String,
    pub org_id: String,
    pub version: i64,
    pub policy_sha256: String,
    pub policy: Value,
    /// Which API key the user gets, as `<owner>#<set-at>`: the owner is `""` for the
    /// organisation's key or a group id; the time makes a rotated key a new version.
    pub api_key_ref: Option<String>,
    /// The delivery settings the version was stored with ([`OrgSettings::delivery`]).
    pub delivery: String,
    pub change_seq: i64,
    pub updated_at: Micros,
}

impl StoredUserPolicy {
    /// Whether this stored version already is what `computed` would store.
    fn is_current(&self, computed: &ComputedPolicy) -> bool {
        self.policy_sha256 == computed.policy_sha256
            && self.api_key_ref == computed.api_key_ref
            && self.delivery == computed.delivery
    }
}

/// The stored policies of the given users, by user id, read on `conn`.
async fn stored_in(
    conn: &mut sqlx::AnyConnection,
    user_ids: &[String],
) -> StoreResult<std::collections::HashMap<String, StoredUserPolicy>> {
    let mut out = std::collections::HashMap::with_capacity(user_ids.len());
    for chunk in user_ids.chunks(500) {
        let sql = format!(
            "SELECT {STORED_COLUMNS} FROM user_policies WHERE user_id IN ({})",
            super::placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let p = stored_from_row(&r)?;
            out.insert(p.user_id.clone(), p);
        }
    }
    Ok(out)
}

fn stored_from_row(r: &AnyRow) -> StoreResult<StoredUserPolicy> {
    let policy: String = r.try_get("policy")?;
    Ok(StoredUserPolicy {
        user_id: r.try_get("user_id")?,
        org_id: r.try_get("org_id")?,
        version: r.try_get("version")?,
        policy_sha256: r.try_get("policy_sha256")?,
        policy: serde_json::from_str(&policy)
            .map_err(|e| StoreError::Corrupt(format!("user policy: {e}")))?,
        api_key_ref: r.try_get("api_key_ref")?,
        delivery: r.try_get("delivery")?,
        change_seq: r.try_get("change_seq")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const STORED_COLUMNS: &str =
    "user_id, org_id, version, policy_sha256, policy, api_key_ref, delivery, change_seq, updated_at";

fn parse_json(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

async fn settings_in(conn: &mut sqlx::AnyConnection, org_id: &str) -> StoreResult<OrgSettings> {
    let row = sqlx::query("SELECT default_policy, offline_rule, offline_grace_seconds, deprovision_without_groups, trust_mdm_identity, key_delivery, upstream_url, audit_retention_days FROM org_settings WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(r) = row else {
        return Ok(OrgSettings::default());
    };
    let policy: String = r.try_get("default_policy")?;
    let rule: String = r.try_get("offline_rule")?;
    let dwg: i64 = r.try_get("deprovision_without_groups")?;
    Ok(OrgSettings {
        default_policy: parse_json(&policy, "default policy")?,
        offline_rule: OfflineRule::parse(&rule).unwrap_or(OfflineRule::KeepLast),
        offline_grace_seconds: r.try_get("offline_grace_seconds")?,
        deprovision_without_groups: dwg != 0,
        trust_mdm_identity: r.try_get::<i64, _>("trust_mdm_identity")? != 0,
        key_delivery: KeyDelivery::parse(&r.try_get::<String, _>("key_delivery")?)
            .unwrap_or_default(),
        upstream_url: Some(r.try_get::<String, _>("upstream_url")?).filter(|u| !u.is_empty()),
        audit_retention_days: r.try_get("audit_retention_days")?,
    })
}

async fn upsert_settings(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    s: &OrgSettings,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO org_settings (org_id, default_policy, offline_rule, offline_grace_seconds, deprovision_without_groups, updated_at, trust_mdm_identity, key_delivery, upstream_url, audit_retention_days) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (org_id) DO UPDATE SET default_policy = excluded.default_policy, offline_rule = excluded.offline_rule, \
         offline_grace_seconds = excluded.offline_grace_seconds, deprovision_without_groups = excluded.deprovision_without_groups, \
         updated_at = excluded.updated_at, trust_mdm_identity = excluded.trust_mdm_identity, \
         key_delivery = excluded.key_delivery, upstream_url = excluded.upstream_url, \
         audit_retention_days = excluded.audit_retention_days",
    )
    .bind(org_id)
    .bind(s.default_policy.to_string())
    .bind(s.offline_rule.as_str())
    .bind(s.offline_grace_seconds)
    .bind(i64::from(s.deprovision_without_groups))
    .bind(now_micros())
    .bind(i64::from(s.trust_mdm_identity))
    .bind(s.key_delivery.as_str())
    .bind(s.upstream_url.as_deref().unwrap_or(""))
    .bind(s.audit_retention_days)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    pub async fn org_settings(&self, org_id: &str) -> StoreResult<OrgSettings> {
        let mut conn = self.read.acquire().await?;
        settings_in(&mut conn, org_id).await
    }

    /// Replaces the organisation's settings (default policy and rules) in one transaction.
    pub async fn set_org_settings(
        &self,
        org_id: &str,
        settings: &OrgSettings,
        actor: &Actor,
        action: AuditAction,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        upsert_settings(&mut tx, org_id, settings).await?;
        record_input_change(&mut tx, org_id, InputChange::Org).await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            action,
            "Org",
            Some(org_id),
            json!({"defaultPolicy": settings.default_policy, "offlineRule": settings.offline_rule.as_str(),
                   "offlineGraceSeconds": settings.offline_grace_seconds, "deprovisionWithoutGroups": settings.deprovision_without_groups,
                   "trustMdmIdentity": settings.trust_mdm_identity, "keyDelivery": settings.key_delivery.as_str(),
                   "upstreamUrl": settings.upstream_url, "auditRetentionDays": settings.audit_retention_days}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(())
    }

    /// Sets (or with `None` clears) a group's policy override.
    pub async fn set_group_policy(
        &self,
        org_id: &str,
        group_id: &str,
        policy: Option<&Value>,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        match policy {
            Some(p) => {
                sqlx::query(
                    "INSERT INTO group_policies (group_id, org_id, policy, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (group_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                )
                .bind(group_id)
                .bind(org_id)
                .bind(p.to_string())
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM group_policies WHERE group_id = $1")
                    .bind(group_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        record_input_change(&mut tx, org_id, InputChange::Group(group_id.to_string())).await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::GroupPolicySet,
            "Group",
            Some(group_id),
            json!({"policy": policy}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(())
    }

    /// Maps a group to a Palisade role (or removes the mapping).
    pub async fn set_group_role(
        &self,
        org_id: &str,
        group_id: &str,
        role: Option<&str>,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        match role {
            Some(r) => {
                sqlx::query(
                    "INSERT INTO group_roles (group_id, org_id, role, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (group_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at",
                )
                .bind(group_id)
                .bind(org_id)
                .bind(r)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM group_roles WHERE group_id = $1")
                    .bind(group_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        record_input_change(&mut tx, org_id, InputChange::Group(group_id.to_string())).await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::GroupRoleSet,
            "Group",
            Some(group_id),
            json!({"role": role}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(())
    }

    /// Stores an encrypted API key for the organisation (`group_id` None) or a group.
    pub async fn set_api_key(
        &self,
        org_id: &str,
        group_id: Option<&str>,
        ciphertext: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_keys (org_id, group_key, ciphertext, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, group_key) DO UPDATE SET ciphertext = excluded.ciphertext, created_at = excluded.created_at",
        )
        .bind(org_id)
        .bind(group_id.unwrap_or(""))
        .bind(ciphertext)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        let change = match group_id {
            Some(g) => InputChange::Group(g.to_string()),
            None => InputChange::Org,
        };
        record_input_change(&mut tx, org_id, change).await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::ApiKeySet,
            if group_id.is_some() { "Group" } else { "Org" },
            Some(group_id.unwrap_or(org_id)),
            json!({}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(())
    }

    /// The encrypted API key a stored policy's `api_key_ref` names.
    pub async fn api_key_ciphertext(
        &self,
        org_id: &str,
        key_ref: &str,
    ) -> StoreResult<Option<String>> {
        let owner = key_ref.split_once('#').map(|(o, _)| o).unwrap_or(key_ref);
        Ok(
            sqlx::query("SELECT ciphertext FROM api_keys WHERE org_id = $1 AND group_key = $2")
                .bind(org_id)
                .bind(owner)
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get("ciphertext"))
                .transpose()?,
        )
    }

    /// Everything needed to compute a user's effective policy (live users only).
    pub async fn user_policy_inputs(&self, user_id: &str) -> StoreResult<Option<UserPolicyInputs>> {
        Ok(self
            .user_policy_inputs_many(&[user_id.to_string()])
            .await?
            .into_iter()
            .next())
    }

    /// The policy inputs of many users in a few queries (a fan-out to thousands of users reads
    /// them in bounded batches, not one round trip per user). Deleted users are left out.
    pub async fn user_policy_inputs_many(
        &self,
        user_ids: &[String],
    ) -> StoreResult<Vec<UserPolicyInputs>> {
        let mut conn = self.read.acquire().await?;
        inputs_in(&mut conn, user_ids).await
    }

    pub async fn stored_user_policy(&self, user_id: &str) -> StoreResult<Option<StoredUserPolicy>> {
        sqlx::query(&format!(
            "SELECT {STORED_COLUMNS} FROM user_policies WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(stored_from_row)
        .transpose()
    }

    /// Recomputes users' effective policies with `compute` from the inputs read inside one
    /// write transaction, and stores those that differ from the stored ones (by hash, API key
    /// reference or delivery settings): each changed user gets the next version and a new
    /// change sequence number. Reading the inputs under the transaction's lock on the change
    /// counter (which every write of policy inputs takes too) means a version is never computed
    /// from inputs older than the version it replaces. Inactive and deleted users are skipped.
    /// Returns each active user's stored row and whether it changed (a user whose inputs do not
    /// compute is logged and left out).
    pub async fn recompute_policies<F>(
        &self,
        user_ids: &[String],
        compute: F,
    ) -> StoreResult<Vec<(StoredUserPolicy, bool)>>
    where
        F: Fn(&UserPolicyInputs) -> StoreResult<ComputedPolicy> + Send + Sync,
    {
        let mut out = Vec::with_capacity(user_ids.len());
        if user_ids.is_empty() {
            return Ok(out);
        }
        // A first look without the write lock: most recomputes (every agent connection) find
        // nothing new, and those must not queue for the single writer.
        let stale = {
            let mut conn = self.read.acquire().await?;
            let inputs = inputs_in(&mut conn, user_ids).await?;
            let stored = stored_in(&mut conn, user_ids).await?;
            let mut stale = Vec::new();
            for input in inputs.iter().filter(|i| i.active) {
                let current = stored.get(&input.user_id);
                match (compute(input), current) {
                    (Ok(c), Some(cur)) if cur.is_current(&c) => out.push((cur.clone(), false)),
                    _ => stale.push(input.user_id.clone()),
                }
            }
            stale
        };
        if stale.is_empty() {
            return Ok(out);
        }
        let user_ids = &stale[..];
        let mut tx = self.begin_write().await?;
        // Taking the counter row first serialises recomputes with each other and with every
        // write of policy inputs (PostgreSQL row lock; SQLite has one writer), so change_seq
        // order is commit order and two writers never store the same version.
        let mut seq: i64 = sqlx::query(
            "UPDATE counters SET value = value WHERE name = 'policy_change' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("value")?;
        let inputs = inputs_in(&mut tx, user_ids).await?;
        let mut stored = stored_in(&mut tx, user_ids).await?;
        let now = now_micros();
        let mut changed_any = false;
        for input in inputs.iter().filter(|i| i.active) {
            // One user's unreadable input (a stored policy that no longer parses) must not hold
            // back everyone else's change: it is logged, and that user keeps their version.
            let c = match compute(input) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(user_id = %input.user_id, error = %e, "cannot compute the user's policy; keeping the stored version");
                    continue;
                }
            };
            let current = stored.remove(&input.user_id);
            if let Some(cur) = current.as_ref().filter(|cur| cur.is_current(&c)) {
                out.push((cur.clone(), false));
                continue;
            }
            seq += 1;
            changed_any = true;
            let version = current.as_ref().map(|x| x.version + 1).unwrap_or(1);
            sqlx::query(
                "INSERT INTO user_policies (user_id, org_id, version, policy_sha256, policy, api_key_ref, change_seq, updated_at, delivery) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (user_id) DO UPDATE SET version = excluded.version, policy_sha256 = excluded.policy_sha256, \
                 policy = excluded.policy, api_key_ref = excluded.api_key_ref, change_seq = excluded.change_seq, \
                 updated_at = excluded.updated_at, delivery = excluded.delivery",
            )
            .bind(&input.user_id)
            .bind(&input.org_id)
            .bind(version)
            .bind(&c.policy_sha256)
            .bind(c.policy.to_string())
            .bind(&c.api_key_ref)
            .bind(seq)
            .bind(now)
            .bind(&c.delivery)
            .execute(&mut *tx)
            .await?;
            audit::record(
                &mut tx,
                &input.org_id,
                &Actor::System,
                AuditAction::UserPolicyVersion,
                "User",
                Some(&input.user_id),
                json!({"version": version, "sha256": c.policy_sha256}),
            )
            .await?;
            out.push((
                StoredUserPolicy {
                    user_id: input.user_id.clone(),
                    org_id: input.org_id.clone(),
                    version,
                    policy_sha256: c.policy_sha256,
                    policy: c.policy,
                    api_key_ref: c.api_key_ref,
                    delivery: c.delivery,
                    change_seq: seq,
                    updated_at: now,
                },
                true,
            ));
        }
        if changed_any {
            sqlx::query("UPDATE counters SET value = $1 WHERE name = 'policy_change'")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            super::changes::notify_change(&mut tx).await?;
            tx.commit().await?;
            self.committed_change();
        }
        Ok(out)
    }

    /// Stored policies changed after `after_seq`, in sequence order (at most `limit`), for
    /// catching up with other processes' writes.
    pub async fn user_policies_changed_since(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredUserPolicy>> {
        sqlx::query(&format!("SELECT {STORED_COLUMNS} FROM user_policies WHERE change_seq > $1 ORDER BY change_seq LIMIT $2"))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(stored_from_row)
            .collect()
    }

    /// The highest change sequence number committed so far (policy versions and revocations).
    pub async fn latest_policy_change_seq(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query("SELECT value FROM counters WHERE name = 'policy_change'")
                .fetch_one(&self.read)
                .await?
                .try_get("value")?,
        )
    }

    /// Those of the given users that have a stored policy (that is, an enrolled device):
    /// only their policies need recomputing when their inputs change.
    pub async fn users_with_policies(&self, user_ids: &[String]) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        for chunk in user_ids.chunks(500) {
            let sql = format!(
                "SELECT user_id FROM user_policies WHERE user_id IN ({})",
                super::placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.read).await? {
                out.push(r.try_get("user_id")?);
            }
        }
        Ok(out)
    }

    /// Ids of the live users of an organisation.
    /// A group's policy override, if it has one.
    pub async fn group_policy(&self, group_id: &str) -> StoreResult<Option<Value>> {
        let row = sqlx::query("SELECT policy FROM group_policies WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| parse_json(&r.try_get::<String, _>("policy")?, "group policy"))
            .transpose()
    }

    pub async fn org_user_ids(&self, org_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query(
            "SELECT id FROM users WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        )
        .bind(org_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("id")?))
        .collect()
    }

    /// Ids of a group's members.
    pub async fn group_member_ids(&self, group_id: &str) -> StoreResult<Vec<String>> {
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1")
            .bind(group_id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("user_id")?))
            .collect()
    }

    /// A live group of the organisation by displayName (case-insensitive).
    pub async fn group_by_display_name(
        &self,
        org_id: &str,
        display_name: &str,
    ) -> StoreResult<Option<crate::domain::Group>> {
        Ok(self
            .select_groups(
                org_id,
                &super::GroupSelection::DisplayName(display_name.to_string()),
            )
            .await?
            .into_iter()
            .next())
    }

    /// A live user of the organisation by userName (case-insensitive).
    pub async fn user_by_user_name(
        &self,
        org_id: &str,
        user_name: &str,
    ) -> StoreResult<Option<crate::domain::User>> {
        Ok(self
            .select_users(
                org_id,
                &super::UserSelection::UserName(user_name.to_string()),
            )
            .await?
            .into_iter()
            .next())
    }
}

/// The policy inputs of many users, read on `conn` (a transaction's, to compute from what it
/// locked).
async fn inputs_in(
    conn: &mut sqlx::AnyConnection,
    user_ids: &[String],
) -> StoreResult<Vec<UserPolicyInputs>> {
    let mut out = Vec::with_capacity(user_ids.len());
    let mut settings_by_org: std::collections::HashMap<String, (OrgSettings, Option<Micros>)> =
        Default::default();
    for chunk in user_ids.chunks(500) {
        let ph = super::placeholders(1, chunk.len());
        let user_sql = format!("SELECT id, org_id, user_name, active, primary_role FROM users WHERE deleted_at IS NULL AND id IN ({ph})");
        let mut q = sqlx::query(&user_sql);
        for id in chunk {
            q = q.bind(id);
        }
        let users = q.fetch_all(&mut *conn).await?;
        let group_sql = format!(
            "SELECT m.user_id, g.id, g.display_name, p.policy, r.role, k.created_at AS key_set_at FROM group_members m \
             JOIN scim_groups g ON g.id = m.group_id AND g.deleted_at IS NULL \
             LEFT JOIN group_policies p ON p.group_id = g.id \
             LEFT JOIN group_roles r ON r.group_id = g.id \
             LEFT JOIN api_keys k ON k.org_id = g.org_id AND k.group_key = g.id \
             WHERE m.user_id IN ({ph}) ORDER BY m.user_id, g.display_name_key, g.id"
        );
        let mut gq = sqlx::query(&group_sql);
        for id in chunk {
            gq = gq.bind(id);
        }
        let mut groups_by_user: std::collections::HashMap<String, Vec<UserGroupInput>> =
            Default::default();
        for r in gq.fetch_all(&mut *conn).await? {
            let policy: Option<String> = r.try_get("policy")?;
            groups_by_user
                .entry(r.try_get("user_id")?)
                .or_default()
                .push(UserGroupInput {
                    group_id: r.try_get("id")?,
                    display_name: r.try_get("display_name")?,
                    policy: policy.map(|p| parse_json(&p, "group policy")).transpose()?,
                    role: r.try_get("role")?,
                    api_key_set_at: r.try_get("key_set_at")?,
                });
        }
        for u in users {
            let org_id: String = u.try_get("org_id")?;
            if !settings_by_org.contains_key(&org_id) {
                let settings = settings_in(conn, &org_id).await?;
                let key: Option<Micros> = sqlx::query(
                    "SELECT created_at FROM api_keys WHERE org_id = $1 AND group_key = ''",
                )
                .bind(&org_id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.try_get("created_at"))
                .transpose()?;
                settings_by_org.insert(org_id.clone(), (settings, key));
            }
            let (settings, org_api_key_set_at) =
                settings_by_org.get(&org_id).cloned().unwrap_or_default();
            let id: String = u.try_get("id")?;
            let active: i64 = u.try_get("active")?;
            out.push(UserPolicyInputs {
                groups: groups_by_user.remove(&id).unwrap_or_default(),
                user_id: id,
                org_id,
                user_name: u.try_get("user_name")?,
                active: active != 0,
                primary_role: u.try_get("primary_role")?,
                settings,
                org_api_key_set_at,
            });
        }
    }
    Ok(out)
}
