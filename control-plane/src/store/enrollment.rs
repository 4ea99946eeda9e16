//! Enrollment: binding a device to a proven, active person. Three ways in (the MDM fleet token
//! plus a claimed person, a per-user activation code, an approved interactive sign-in grant)
//! share one transaction shape: lock the user's row, re-check that the person is active, then
//! create the device — or, for the same machine (same installation key), renew it — and audit
//! the method and source address.

use crate::domain::AuditAction;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::secrets::{mint_secret, sha256_hex};
use super::{audit, new_id, Store, StoreResult};
use crate::domain::{now_micros, Actor, DeviceInfo, EnrollMethod, Enrollment, Micros};

/// Every device credential starts with this.
pub const DEVICE_CREDENTIAL_PREFIX: &str = "pal_dev_";

/// Why an enrollment was refused. The reason goes to the log and the audit trail only: the
/// agent always hears the same answer, so nothing can enumerate users or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollRefusal {
    #[error("unknown or revoked enrollment token")]
    InvalidToken,
    #[error("expired enrollment token")]
    ExpiredToken,
    #[error("no user {0:?} in this organisation")]
    UnknownUser(String),
    #[error("user {0:?} is not active")]
    InactiveUser(String),
    #[error("unknown, revoked or already used activation code")]
    InvalidCode,
    #[error("expired activation code")]
    ExpiredCode,
    #[error("the device this sign-in confirms was revoked or belongs to another person")]
    DeviceMismatch,
}

/// What an agent tells about itself when it enrolls, plus where the request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollContext<'a> {
    pub info: &'a DeviceInfo,
    /// The agent's installation key (a secret in its root-only state); re-enrolling the same
    /// machine with it renews the same device instead of adding one.
    pub install_key: Option<&'a str>,
    pub source: &'a str,
}

/// Caps free-text fields an agent sends, so a misbehaving client cannot bloat the store.
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// An enrollment token that checked out: which organisation it enrolls into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollTokenCheck {
    pub token_id: String,
    pub org_id: String,
    pub org_slug: String,
}

pub(crate) const ENROLL_TOKEN_QUERY: &str =
    "SELECT t.id, t.org_id, t.expires_at, t.revoked_at, o.slug FROM enroll_tokens t \
     JOIN orgs o ON o.id = t.org_id WHERE t.secret_sha256 = $1";

/// The verdict on a row of [`ENROLL_TOKEN_QUERY`] (`None`: no such token) at `now`.
pub(crate) fn token_check(
    row: Option<&AnyRow>,
    now: Micros,
) -> StoreResult<Result<EnrollTokenCheck, EnrollRefusal>> {
    let Some(token) = row else {
        return Ok(Err(EnrollRefusal::InvalidToken));
    };
    let revoked: Option<i64> = token.try_get("revoked_at")?;
    if revoked.is_some() {
        return Ok(Err(EnrollRefusal::InvalidToken));
    }
    let expires: Option<i64> = token.try_get("expires_at")?;
    if expires.is_some_and(|e| e <= now) {
        return Ok(Err(EnrollRefusal::ExpiredToken));
    }
    Ok(Ok(EnrollTokenCheck {
        token_id: token.try_get("id")?,
        org_id: token.try_get("org_id")?,
        org_slug: token.try_get("slug")?,
    }))
}

/// The hash stored for an installation key (empty when the agent sent none).
pub(crate) fn install_key_hash(key: Option<&str>) -> Option<String> {
    key.filter(|k| !k.is_empty() && k.len() <= 200)
        .map(sha256_hex)
}

/// The user row, locked until the transaction ends on PostgreSQL, so a concurrent
/// deactivation either commits first (and we see `active = 0`) or waits for this enrollment
/// and then revokes the device it created. `FOR NO KEY UPDATE`, the lock the deactivating
/// `UPDATE` itself takes: it serialises the two, but not the foreign-key checks of writes that
/// merely reference the user (a policy version, a device) — with `FOR UPDATE` those waited
/// here while holding the change counter, which a deactivation then waited for: a deadlock
/// (seen in `enroll_racing_deactivation_postgres`). SQLite transactions here are
/// `BEGIN IMMEDIATE`, which already serialises writers.
pub(crate) struct LockedUser {
    pub id: String,
    pub user_name: String,
    pub active: bool,
}

pub(crate) async fn lock_user(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    user_id: &str,
) -> StoreResult<Option<LockedUser>> {
    let lock = if tx.backend_name() == "PostgreSQL" {
        " FOR NO KEY UPDATE"
    } else {
        ""
    };
    let row = sqlx::query(&format!(
        "SELECT id, user_name, active FROM users WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL{lock}"
    ))
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let active: i64 = r.try_get("active")?;
    let id: String = r.try_get("id")?;
    let active = active != 0 && !removed_from_every_group(&mut *tx, org_id, &id).await?;
    Ok(Some(LockedUser {
        id,
        user_name: r.try_get("user_name")?,
        active,
    }))
}

/// Whether the organisation deprovisions people who are in no synced group and this person is
/// in none: such a person is deprovisioned (their devices were revoked) though their user row
/// stays active, and must not enroll again.
pub(crate) async fn removed_from_every_group(
    conn: &mut sqlx::AnyConnection,
    org_id: &str,
    user_id: &str,
) -> StoreResult<bool> {
    let enforced =
        sqlx::query("SELECT deprovision_without_groups FROM org_settings WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get::<i64, _>("deprovision_without_groups"))
            .transpose()?
            .unwrap_or(0)
            != 0;
    if !enforced {
        return Ok(false);
    }
    let member = sqlx::query("SELECT 1 AS x FROM group_members WHERE user_id = $1 LIMIT 1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    Ok(!member)
}

impl Store {
    /// Whether the person may hold a device now: active, not deleted, and not deprovisioned
    /// by removal from their last group. The one rule the sign-in pages, the stream and every
    /// enrollment share.
    pub async fn person_may_hold_device(&self, org_id: &str, user_id: &str) -> StoreResult<bool> {
        let mut conn = self.read.acquire().await?;
        let active = sqlx::query(
            "SELECT active FROM users WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<i64, _>("active"))
        .transpose()?
        .unwrap_or(0)
            != 0;
        Ok(active && !removed_from_every_group(&mut conn, org_id, user_id).await?)
    }
}

/// Who performed an enrollment, for the audit trail.
pub(crate) struct Binding<'a> {
    pub org_id: &'a str,
    pub org_slug: &'a str,
    pub user_id: &'a str,
    pub method: EnrollMethod,
    pub verified: bool,
    pub actor: Actor,
    pub ctx: &'a EnrollContext<'a>,
    /// Extra audit detail (the token, invite or grant id).
    pub via: serde_json::Value,
}

/// Creates (or, for the same machine and person, renews) the device inside `tx`, after locking
/// and re-checking the user. `Ok(Err(..))` when the person is not active.
pub(crate) async fn bind_device(
    tx: &mut Transaction<'_, Any>,
    b: Binding<'_>,
) -> StoreResult<Result<Enrollment, EnrollRefusal>> {
    let Some(user) = lock_user(tx, b.org_id, b.user_id).await? else {
        return Ok(Err(EnrollRefusal::UnknownUser(b.user_id.to_string())));
    };
    if !user.active {
        return Ok(Err(EnrollRefusal::InactiveUser(user.user_name)));
    }
    let now = now_micros();
    let credential = mint_secret(DEVICE_CREDENTIAL_PREFIX);
    let install_hash = install_key_hash(b.ctx.install_key);
    let info = b.ctx.info;
    let (hostname, os, version) = (
        clip(&info.hostname, 255),
        clip(&info.os, 64),
        clip(&info.agent_version, 64),
    );
    // The same machine enrolling again: renew its live device rather than add one.
    let existing = match &install_hash {
        Some(h) => sqlx::query(
            "SELECT id, user_id, verified FROM devices WHERE org_id = $1 AND install_key_sha256 = $2 AND revoked_at IS NULL",
        )
        .bind(b.org_id)
        .bind(h)
        .fetch_optional(&mut **tx)
        .await?,
        None => None,
    };
    let mut renewed = false;
    let (device_id, verified) = match existing {
        Some(row) => {
            let id: String = row.try_get("id")?;
            let owner: String = row.try_get("user_id")?;
            let was_verified: i64 = row.try_get("verified")?;
            if owner == user.id {
                renewed = true;
                let verified = was_verified != 0 || b.verified;
                sqlx::query(
                    "UPDATE devices SET credential_sha256 = $1, hostname = $2, os = $3, agent_version = $4, verified = $5, \
                     verified_at = CASE WHEN $6 = 1 AND verified_at IS NULL THEN $7 ELSE verified_at END WHERE id = $8",
                )
                .bind(sha256_hex(&credential))
                .bind(&hostname)
                .bind(&os)
                .bind(&version)
                .bind(i64::from(verified))
                .bind(i64::from(verified))
                .bind(now)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
                (id, verified)
            } else {
                // The machine changed hands: the previous person's device ends here.
                let seq = super::changes::next_change_seq(tx).await?;
                sqlx::query("UPDATE devices SET revoked_at = $1, revoked_reason = $2, revoked_seq = $3 WHERE id = $4")
                    .bind(now)
                    .bind("re-enrolled as another person")
                    .bind(seq)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                super::changes::notify_change(tx).await?;
                (
                    insert_device(tx, &b, &user.id, &credential, install_hash.as_deref(), now)
                        .await?,
                    b.verified,
                )
            }
        }
        None => (
            insert_device(tx, &b, &user.id, &credential, install_hash.as_deref(), now).await?,
            b.verified,
        ),
    };
    let mut detail = json!({
        "userId": user.id, "userName": user.user_name, "method": b.method.as_str(),
        "verified": verified, "renewed": renewed, "hostname": hostname, "os": os,
        "agentVersion": version, "source": clip(b.ctx.source, 64),
    });
    if let (serde_json::Value::Object(d), serde_json::Value::Object(via)) = (&mut detail, b.via) {
        d.extend(via);
    }
    audit::record(
        tx,
        b.org_id,
        &b.actor,
        AuditAction::DeviceEnroll,
        "Device",
        Some(&device_id),
        detail,
    )
    .await?;
    Ok(Ok(Enrollment {
        device_id,
        credential,
        org_id: b.org_id.to_string(),
        org_slug: b.org_slug.to_string(),
        user_id: user.id,
        user_name: user.user_name,
        verified,
        method: b.method,
    }))
}

async fn insert_device(
    tx: &mut Transaction<'_, Any>,
    b: &Binding<'_>,
    user_id: &str,
    credential: &str,
    install_hash: Option<&str>,
    now: i64,
) -> StoreResult<String> {
    let device_id = new_id();
    let info = b.ctx.info;
    sqlx::query(
        "INSERT INTO devices (id, org_id, user_id, credential_sha256, hostname, os, agent_version, enrolled_at, \
         enroll_method, verified, verified_at, install_key_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&device_id)
    .bind(b.org_id)
    .bind(user_id)
    .bind(sha256_hex(credential))
    .bind(clip(&info.hostname, 255))
    .bind(clip(&info.os, 64))
    .bind(clip(&info.agent_version, 64))
    .bind(now)
    .bind(b.method.as_str())
    .bind(i64::from(b.verified))
    .bind(b.verified.then_some(now))
    .bind(install_hash)
    .execute(&mut **tx)
    .await?;
    Ok(device_id)
}

/// Records a refused enrollment in the organisation's audit trail (only once the request has
/// shown it belongs to an organisation: a token or code that checks out).
pub(crate) async fn audit_refusal(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    actor: &Actor,
    method: EnrollMethod,
    refusal: &EnrollRefusal,
    ctx: &EnrollContext<'_>,
) -> StoreResult<()> {
    audit::record(
        tx,
        org_id,
        actor,
        AuditAction::DeviceEnrollRefused,
        "Device",
        None,
        json!({"method": method.as_str(), "reason": refusal.to_string(),
               "hostname": clip(&ctx.info.hostname, 255), "source": clip(ctx.source, 64)}),
    )
    .await
}

impl Store {
    /// The MDM method: an organisation enrollment token plus the person the MDM names. The
    /// device is unverified (policy, no API key) unless the organisation trusts MDM identity.
    /// The token is checked on the read pool first, so a flood of bad tokens never queues
    /// for the writer.
    pub async fn enroll_with_token(
        &self,
        enroll_token: &str,
        user_name: &str,
        ctx: &EnrollContext<'_>,
    ) -> StoreResult<Result<Enrollment, EnrollRefusal>> {
        // Unauthenticated callers must not queue for the single writer: a bad token is
        // refused from the read pool before any write transaction starts.
        if let Err(refusal) = self.check_enroll_token(enroll_token).await? {
            return Ok(Err(refusal));
        }
        let mut tx = self.begin_write().await?;
        // Checked again inside the transaction: it may have been revoked meanwhile.
        let row = sqlx::query(ENROLL_TOKEN_QUERY)
            .bind(sha256_hex(enroll_token))
            .fetch_optional(&mut *tx)
            .await?;
        let EnrollTokenCheck {
            token_id,
            org_id,
            org_slug,
        } = match token_check(row.as_ref(), now_micros())? {
            Ok(t) => t,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let actor = Actor::EnrollToken {
            id: token_id.clone(),
        };
        let user: Option<String> = sqlx::query(
            "SELECT id FROM users WHERE org_id = $1 AND user_name_key = $2 AND deleted_at IS NULL",
        )
        .bind(&org_id)
        .bind(user_name.to_lowercase())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()?;
        let result = match user {
            None => Err(EnrollRefusal::UnknownUser(clip(user_name, 512))),
            Some(user_id) => {
                let trusted =
                    sqlx::query("SELECT trust_mdm_identity FROM org_settings WHERE org_id = $1")
                        .bind(&org_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get::<i64, _>("trust_mdm_identity"))
                        .transpose()?
                        .unwrap_or(0)
                        != 0;
                bind_device(
                    &mut tx,
                    Binding {
                        org_id: &org_id,
                        org_slug: &org_slug,
                        user_id: &user_id,
                        method: EnrollMethod::MdmToken,
                        verified: trusted,
                        actor: actor.clone(),
                        ctx,
                        via: json!({"enrollTokenId": token_id, "trustMdmIdentity": trusted}),
                    },
                )
                .await?
            }
        };
        match result {
            Ok(enrollment) => {
                sqlx::query("UPDATE enroll_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now_micros())
                    .bind(&token_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                // A re-enrollment as another person revoked the previous device.
                self.committed_change();
                Ok(Ok(enrollment))
            }
            Err(refusal) => {
                audit_refusal(
                    &mut tx,
                    &org_id,
                    &actor,
                    EnrollMethod::MdmToken,
                    &refusal,
                    ctx,
                )
                .await?;
                tx.commit().await?;
                Ok(Err(refusal))
            }
        }
    }
}
