//! Enrollment tokens and devices: minting, listing and revoking enrollment tokens, enrolling a
//! device for an active user, authenticating a device credential, and revoking a user's devices
//! inside the deprovisioning transaction.

use crate::domain::AuditAction;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::enrollment::{clip, DEVICE_CREDENTIAL_PREFIX};
use super::enrollment::{token_check, EnrollRefusal, EnrollTokenCheck, ENROLL_TOKEN_QUERY};
use super::secrets::{mint_secret, pick_credential, sha256_hex, shown_prefix};
use super::{audit, new_id, Store, StoreError, StoreResult};
use crate::domain::{now_micros, to_rfc3339, Actor, Device, DeviceAuth, EnrollToken, Micros};

/// Every enrollment token starts with this.
pub const ENROLL_TOKEN_PREFIX: &str = "pal_enroll_";
/// Enrollment tokens expire after this unless told otherwise (the one printed at first start too).
pub const DEFAULT_ENROLL_TOKEN_LIFETIME_MICROS: Micros = 30 * 24 * 3600 * 1_000_000;

fn enroll_token_from_row(r: &AnyRow) -> StoreResult<EnrollToken> {
    Ok(EnrollToken {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// What the console's overview counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetCounts {
    pub users_active: u64,
    pub users_inactive: u64,
    pub devices_live: u64,
    pub devices_online: u64,
    pub devices_offline: u64,
    pub devices_stale: u64,
    pub devices_current: u64,
}

const DEVICE_COLUMNS: &str =
    "d.id, d.user_id, u.user_name, d.hostname, d.os, d.agent_version, d.enrolled_at, d.last_seen_at, \
     d.applied_version, p.version AS current_version, d.last_error, d.revoked_at, d.revoked_reason, d.wiped_at, \
     d.verified, d.enroll_method, d.tamper_count, d.last_tamper_at";

/// Devices with their person (for the userName) and the person's current policy version.
const DEVICE_FROM: &str =
    "devices d JOIN users u ON u.id = d.user_id LEFT JOIN user_policies p ON p.user_id = d.user_id";

fn device_from_row(r: &AnyRow) -> StoreResult<Device> {
    Ok(Device {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        user_name: r.try_get("user_name")?,
        hostname: r.try_get("hostname")?,
        os: r.try_get("os")?,
        agent_version: r.try_get("agent_version")?,
        enrolled_at: r.try_get("enrolled_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        applied_version: r.try_get("applied_version")?,
        current_version: r.try_get("current_version")?,
        last_error: r.try_get("last_error")?,
        revoked_at: r.try_get("revoked_at")?,
        revoked_reason: r.try_get("revoked_reason")?,
        wiped_at: r.try_get("wiped_at")?,
        verified: r.try_get::<i64, _>("verified")? != 0,
        enroll_method: r
            .try_get::<Option<String>, _>("enroll_method")?
            .unwrap_or_default(),
        tamper_count: r.try_get("tamper_count")?,
        last_tamper_at: r.try_get("last_tamper_at")?,
    })
}

impl Store {
    /// Mints an enrollment token for the organisation; it expires at `expires_at` (default:
    /// [`DEFAULT_ENROLL_TOKEN_LIFETIME_MICROS`] from now).
    pub async fn create_enroll_token(
        &self,
        org_id: &str,
        expires_at: Option<Micros>,
        actor: &Actor,
    ) -> StoreResult<(EnrollToken, String)> {
        let expires_at =
            Some(expires_at.unwrap_or_else(|| now_micros() + DEFAULT_ENROLL_TOKEN_LIFETIME_MICROS));
        self.mint_enroll_token(org_id, expires_at, None, actor)
            .await
    }

    /// Rotates the organisation's enrollment token: mints a new one and makes every other live
    /// token expire after `overlap` (or sooner if it already would), so MDM can switch over.
    pub async fn rotate_enroll_token(
        &self,
        org_id: &str,
        expires_at: Option<Micros>,
        overlap: Micros,
        actor: &Actor,
    ) -> StoreResult<(EnrollToken, String)> {
        let expires_at =
            Some(expires_at.unwrap_or_else(|| now_micros() + DEFAULT_ENROLL_TOKEN_LIFETIME_MICROS));
        self.mint_enroll_token(
            org_id,
            expires_at,
            Some(now_micros() + overlap.max(0)),
            actor,
        )
        .await
    }

    async fn mint_enroll_token(
        &self,
        org_id: &str,
        expires_at: Option<Micros>,
        others_end_by: Option<Micros>,
        actor: &Actor,
    ) -> StoreResult<(EnrollToken, String)> {
        let secret = mint_secret(ENROLL_TOKEN_PREFIX);
        let token = EnrollToken {
            id: new_id(),
            org_id: org_id.to_string(),
            prefix: shown_prefix(&secret, ENROLL_TOKEN_PREFIX),
            created_at: now_micros(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO enroll_tokens (id, org_id, prefix, secret_sha256, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(org_id)
        .bind(&token.prefix)
        .bind(sha256_hex(&secret))
        .bind(token.created_at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        if let Some(end) = others_end_by {
            sqlx::query(
                "UPDATE enroll_tokens SET expires_at = $1 WHERE org_id = $2 AND id <> $3 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $1)",
            )
            .bind(end)
            .bind(org_id)
            .bind(&token.id)
            .execute(&mut *tx)
            .await?;
        }
        audit::record(
            &mut tx,
            org_id,
            actor,
            if others_end_by.is_some() { AuditAction::EnrollTokenRotate } else { AuditAction::EnrollTokenCreate },
            "EnrollToken",
            Some(&token.id),
            json!({"prefix": token.prefix, "expiresAt": expires_at, "othersExpireAt": others_end_by}),
        )
        .await?;
        tx.commit().await?;
        Ok((token, secret))
    }

    pub async fn list_enroll_tokens(&self, org_id: &str) -> StoreResult<Vec<EnrollToken>> {
        sqlx::query("SELECT id, org_id, prefix, created_at, expires_at, last_used_at, revoked_at FROM enroll_tokens WHERE org_id = $1 ORDER BY created_at, id")
            .bind(org_id)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(enroll_token_from_row)
            .collect()
    }

    /// Revokes an enrollment token by id or prefix. Devices already enrolled keep working.
    pub async fn revoke_enroll_token(
        &self,
        org_id: &str,
        id_or_prefix: &str,
        actor: &Actor,
    ) -> StoreResult<EnrollToken> {
        let token = pick_credential(self.list_enroll_tokens(org_id).await?, id_or_prefix, |t| {
            (&t.id, &t.prefix)
        })?;
        if token.revoked_at.is_some() {
            return Ok(token);
        }
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE enroll_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&token.id)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::EnrollTokenRevoke,
            "EnrollToken",
            Some(&token.id),
            json!({"prefix": token.prefix}),
        )
        .await?;
        tx.commit().await?;
        Ok(EnrollToken {
            revoked_at: Some(now),
            ..token
        })
    }

    /// Validates an enrollment token (known, not revoked, not expired) on the read pool, so a
    /// caller with a bad token costs one indexed read and never takes the writer.
    pub async fn check_enroll_token(
        &self,
        enroll_token: &str,
    ) -> StoreResult<Result<EnrollTokenCheck, EnrollRefusal>> {
        if !enroll_token.starts_with(ENROLL_TOKEN_PREFIX) || enroll_token.len() > 200 {
            return Ok(Err(EnrollRefusal::InvalidToken));
        }
        let _permit = self
            .unauthenticated_reads
            .acquire()
            .await
            .map_err(|_| StoreError::Failed("the store is closing".into()))?;
        let row = sqlx::query(ENROLL_TOKEN_QUERY)
            .bind(sha256_hex(enroll_token))
            .fetch_optional(&self.read)
            .await?;
        token_check(row.as_ref(), now_micros())
    }

    /// What a device may receive right now: whether it is verified and live, and whether its
    /// person is active (read together, so a snapshot never carries a key past a deactivation).
    pub async fn device_standing(&self, device_id: &str) -> StoreResult<DeviceStanding> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query(
            "SELECT d.verified, d.revoked_at, d.org_id, d.user_id, u.active, u.deleted_at FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1",
        )
        .bind(device_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(r) = row else {
            return Ok(DeviceStanding::default());
        };
        let active = r.try_get::<i64, _>("active")? != 0
            && r.try_get::<Option<i64>, _>("deleted_at")?.is_none();
        let (org_id, user_id): (String, String) = (r.try_get("org_id")?, r.try_get("user_id")?);
        // The rest of `person_may_hold_device`, on the row already read.
        let user_active = active
            && !super::enrollment::removed_from_every_group(&mut conn, &org_id, &user_id).await?;
        Ok(DeviceStanding {
            verified: r.try_get::<i64, _>("verified")? != 0,
            live: r.try_get::<Option<i64>, _>("revoked_at")?.is_none(),
            user_active,
        })
    }

    /// The slug of the device's organisation (for sending its person to the right sign-in).
    pub async fn device_org_slug(&self, device_id: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query(
            "SELECT o.slug FROM devices d JOIN orgs o ON o.id = d.org_id WHERE d.id = $1",
        )
        .bind(device_id)
        .fetch_optional(&self.read)
        .await?
        .map(|r| r.try_get("slug"))
        .transpose()?)
    }

    /// Why the device was revoked, or `None` while it is live (or unknown).
    pub async fn device_revocation(&self, device_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT revoked_at, revoked_reason FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_optional(&self.read)
            .await?;
        match row {
            Some(r) => super::changes::revocation_of(&r),
            None => Ok(None),
        }
    }

    /// Looks a device credential up. `None`: unknown credential.
    pub async fn authenticate_device(&self, credential: &str) -> StoreResult<Option<DeviceAuth>> {
        if !credential.starts_with(DEVICE_CREDENTIAL_PREFIX) || credential.len() > 200 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT id, org_id, user_id, revoked_at, revoked_reason, verified FROM devices WHERE credential_sha256 = $1")
            .bind(sha256_hex(credential))
            .fetch_optional(&self.read)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(DeviceAuth {
            device_id: r.try_get("id")?,
            org_id: r.try_get("org_id")?,
            user_id: r.try_get("user_id")?,
            revoked_reason: super::changes::revocation_of(&r)?,
            verified: r.try_get::<i64, _>("verified")? != 0,
        }))
    }

    pub async fn devices_of_user(&self, user_id: &str) -> StoreResult<Vec<Device>> {
        sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE d.user_id = $1 ORDER BY d.enrolled_at, d.id"
        ))
        .bind(user_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(device_from_row)
        .collect()
    }

    /// Every device of the organisation (live and revoked), oldest first.
    pub async fn list_devices(&self, org_id: &str) -> StoreResult<Vec<Device>> {
        sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE d.org_id = $1 ORDER BY d.enrolled_at, d.id"
        ))
        .bind(org_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(device_from_row)
        .collect()
    }

    /// The organisation at a glance: people by status, live devices by how recently they were
    /// seen, and how many run their person's current policy version. Aggregates only, so the
    /// cost does not grow with what a page shows.
    pub async fn fleet_counts(&self, org_id: &str, now: Micros) -> StoreResult<FleetCounts> {
        let users = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN active = 1 THEN 1 ELSE 0 END), 0) AS active, \
             COALESCE(SUM(CASE WHEN active = 1 THEN 0 ELSE 1 END), 0) AS inactive \
             FROM users WHERE org_id = $1 AND deleted_at IS NULL",
        )
        .bind(org_id)
        .fetch_one(&self.read)
        .await?;
        let online_since = now - 10 * 60 * 1_000_000;
        let stale_before = now - 7 * 86_400 * 1_000_000;
        let devices = sqlx::query(
            "SELECT COUNT(*) AS live, \
             COALESCE(SUM(CASE WHEN d.last_seen_at >= $2 THEN 1 ELSE 0 END), 0) AS online, \
             COALESCE(SUM(CASE WHEN d.last_seen_at < $3 OR d.last_seen_at IS NULL THEN 1 ELSE 0 END), 0) AS stale, \
             COALESCE(SUM(CASE WHEN d.applied_version = p.version THEN 1 ELSE 0 END), 0) AS current \
             FROM devices d LEFT JOIN user_policies p ON p.user_id = d.user_id \
             WHERE d.org_id = $1 AND d.revoked_at IS NULL",
        )
        .bind(org_id)
        .bind(online_since)
        .bind(stale_before)
        .fetch_one(&self.read)
        .await?;
        let n = |r: &AnyRow, c: &str| -> StoreResult<u64> {
            Ok(u64::try_from(r.try_get::<i64, _>(c)?).unwrap_or(0))
        };
        let live = n(&devices, "live")?;
        let online = n(&devices, "online")?;
        let stale = n(&devices, "stale")?;
        Ok(FleetCounts {
            users_active: n(&users, "active")?,
            users_inactive: n(&users, "inactive")?,
            devices_live: live,
            devices_online: online,
            devices_stale: stale,
            devices_offline: live.saturating_sub(online + stale),
            devices_current: n(&devices, "current")?,
        })
    }

    /// How many live (unrevoked) devices each of these people has.
    pub async fn live_device_counts(
        &self,
        user_ids: &[&str],
    ) -> StoreResult<std::collections::HashMap<String, usize>> {
        let mut out = std::collections::HashMap::new();
        for chunk in user_ids.chunks(500) {
            let sql = format!(
                "SELECT user_id, COUNT(*) AS n FROM devices WHERE revoked_at IS NULL AND user_id IN ({}) GROUP BY user_id",
                super::placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.read).await? {
                let n: i64 = r.try_get("n")?;
                out.insert(r.try_get("user_id")?, usize::try_from(n).unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// One page of the organisation's devices (live and revoked), newest enrollment first,
    /// after the device enrolled at `after` (its time and id).
    pub async fn page_devices(
        &self,
        org_id: &str,
        after: Option<(Micros, &str)>,
        limit: usize,
    ) -> StoreResult<Vec<Device>> {
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE d.org_id = $1 \
             AND (d.enrolled_at < $2 OR (d.enrolled_at = $3 AND d.id < $4)) \
             ORDER BY d.enrolled_at DESC, d.id DESC LIMIT $5"
        ))
        .bind(org_id)
        .bind(at)
        .bind(at)
        .bind(if after.is_some() { id } else { "\u{10FFFF}" })
        .bind(limit.min(1000) as i64)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(device_from_row)
        .collect()
    }

    /// One device of the organisation.
    pub async fn get_device(&self, org_id: &str, device_id: &str) -> StoreResult<Option<Device>> {
        sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE d.org_id = $1 AND d.id = $2"
        ))
        .bind(org_id)
        .bind(device_id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(device_from_row)
        .transpose()
    }

    /// Revokes one device (a lost laptop): its credential stops working and, connected or
    /// not, the agent wipes the key and Claude Code's login when it next hears from us. On the
    /// change feed in the same transaction as its audit event. Revoking a revoked device
    /// changes nothing.
    pub async fn revoke_device(
        &self,
        org_id: &str,
        device_id: &str,
        reason: &str,
        actor: &Actor,
    ) -> StoreResult<Device> {
        let device = self
            .get_device(org_id, device_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if device.revoked_at.is_some() {
            return Ok(device);
        }
        let mut tx = self.begin_write().await?;
        let seq = super::changes::next_change_seq(&mut tx).await?;
        let now = now_micros();
        let done = sqlx::query("UPDATE devices SET revoked_at = $1, revoked_reason = $2, revoked_seq = $3 WHERE id = $4 AND org_id = $5 AND revoked_at IS NULL")
            .bind(now)
            .bind(reason)
            .bind(seq)
            .bind(device_id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            // Revoked meanwhile by another writer: nothing more to say.
            tx.rollback().await?;
            return self
                .get_device(org_id, device_id)
                .await?
                .ok_or(StoreError::NotFound);
        }
        super::changes::notify_change(&mut tx).await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::DeviceRevoke,
            "Device",
            Some(device_id),
            json!({"user": device.user_name, "hostname": device.hostname, "reason": reason}),
        )
        .await?;
        tx.commit().await?;
        self.committed_change();
        Ok(Device {
            revoked_at: Some(now),
            revoked_reason: Some(reason.to_owned()),
            ..device
        })
    }

    /// Records, in one transaction, that devices were seen and which version each applied.
    pub async fn record_device_progress(
        &self,
        entries: &[(String, Option<i64>)],
    ) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        for (device_id, version) in entries {
            match version {
                Some(v) => {
                    sqlx::query("UPDATE devices SET last_seen_at = $1, applied_version = $2, last_error = NULL WHERE id = $3")
                        .bind(now)
                        .bind(*v)
                        .bind(device_id)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(device_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records what a device reported that belongs in the audit trail: a NACK, a tamper, a
    /// wipe, a warning, or a revoked device's reconnection. One report; see
    /// [`Store::record_device_reports`].
    pub async fn record_device_report(
        &self,
        device_id: &str,
        report: DeviceReport<'_>,
    ) -> StoreResult<()> {
        let now = now_micros();
        self.record_device_reports(
            device_id,
            report,
            ReportTally {
                count: 1,
                dropped: 0,
                first_at: now,
                last_at: now,
            },
        )
        .await
    }

    /// Records `tally.count` reports like `report` (plus `tally.dropped` the rate limit
    /// discarded). Reports coalesce in the store: while the device's latest audit row of the
    /// same action is younger than [`REPORT_COALESCE_WINDOW_MICROS`], it is updated (count,
    /// lastAt, a few distinct samples) instead of a new row being added. So however often a
    /// device reports, and however often it reconnects, it adds at most one row per kind per
    /// window.
    pub async fn record_device_reports(
        &self,
        device_id: &str,
        report: DeviceReport<'_>,
        tally: ReportTally,
    ) -> StoreResult<()> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let org: Option<String> = sqlx::query("SELECT org_id FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("org_id"))
            .transpose()?;
        let Some(org_id) = org else {
            return Err(StoreError::NotFound);
        };
        let (action, payload) = match report {
            DeviceReport::Rejected { version, error } => {
                sqlx::query("UPDATE devices SET last_seen_at = $1, last_error = $2 WHERE id = $3")
                    .bind(now)
                    .bind(clip(error, 2000))
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                (
                    AuditAction::DeviceNack,
                    json!({"version": version, "error": clip(error, 2000)}),
                )
            }
            DeviceReport::Tampered { path, kind } => {
                sqlx::query("UPDATE devices SET tamper_count = tamper_count + $1, last_tamper_at = $2, last_seen_at = $2 WHERE id = $3")
                    .bind(i64::try_from(tally.count.saturating_add(tally.dropped)).unwrap_or(i64::MAX))
                    .bind(now)
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                (
                    AuditAction::DeviceTamper,
                    json!({"path": clip(path, 1000), "kind": clip(kind, 32)}),
                )
            }
            DeviceReport::Wiped { removed, failed } => {
                sqlx::query("UPDATE devices SET wiped_at = $1, last_seen_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                let clip_all =
                    |v: &[String]| v.iter().take(64).map(|s| clip(s, 1000)).collect::<Vec<_>>();
                (
                    AuditAction::DeviceWipe,
                    json!({"removed": clip_all(removed), "failed": clip_all(failed)}),
                )
            }
            DeviceReport::RefusedRevoked => {
                sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                (
                    AuditAction::DeviceRefused,
                    json!({"reason": "revoked credential presented; the agent was told to wipe"}),
                )
            }
            DeviceReport::Warning { code, detail } => (
                AuditAction::DeviceWarning,
                json!({"code": clip(code, 64), "detail": clip(detail, 2000)}),
            ),
        };
        let latest = sqlx::query(
            "SELECT id, detail FROM audit_events WHERE resource_id = $1 AND action = $2 AND at >= $3 \
             ORDER BY at DESC LIMIT 1",
        )
        .bind(device_id)
        .bind(action.as_str())
        .bind(now - REPORT_COALESCE_WINDOW_MICROS)
        .fetch_optional(&mut *tx)
        .await?;
        let merged = match &latest {
            Some(row) => {
                let text: String = row.try_get("detail")?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|old| merge_report(old, &payload, &tally))
            }
            None => None,
        };
        match (latest, merged) {
            (Some(row), Some(detail)) => {
                let id: String = row.try_get("id")?;
                sqlx::query("UPDATE audit_events SET detail = $1 WHERE id = $2")
                    .bind(detail.to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {
                let mut detail = payload;
                if let Some(d) = detail.as_object_mut() {
                    d.insert("count".into(), json!(tally.count));
                    d.insert("dropped".into(), json!(tally.dropped));
                    d.insert("firstAt".into(), json!(to_rfc3339(tally.first_at)));
                    d.insert("lastAt".into(), json!(to_rfc3339(tally.last_at)));
                }
                let actor = Actor::Device {
                    id: device_id.to_string(),
                };
                audit::record(
                    &mut tx,
                    &org_id,
                    &actor,
                    action,
                    "Device",
                    Some(device_id),
                    detail,
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// See [`Store::device_standing`]. The default (an unknown device) allows nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStanding {
    pub verified: bool,
    pub live: bool,
    pub user_active: bool,
}

/// How long a device's audit row of one kind keeps absorbing further reports of that kind.
pub const REPORT_COALESCE_WINDOW_MICROS: i64 = 60 * 1_000_000;
/// Distinct payloads a coalesced row keeps beside its first one.
const REPORT_SAMPLES: usize = 8;

/// How many reports a write stands for, and when they arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportTally {
    /// Reports accepted.
    pub count: u64,
    /// Reports the per-device rate limit discarded (counted, not stored one by one).
    pub dropped: u64,
    pub first_at: Micros,
    pub last_at: Micros,
}

/// Folds `tally` and `payload` into a coalesced row's detail; `None` if the row is not one.
fn merge_report(
    mut old: serde_json::Value,
    payload: &serde_json::Value,
    tally: &ReportTally,
) -> Option<serde_json::Value> {
    let count = old.get("count")?.as_u64()?;
    let dropped = old.get("dropped").and_then(|d| d.as_u64()).unwrap_or(0);
    let same = payload
        .as_object()
        .is_some_and(|p| p.iter().all(|(k, v)| old.get(k) == Some(v)));
    let d = old.as_object_mut()?;
    d.insert("count".into(), json!(count.saturating_add(tally.count)));
    d.insert(
        "dropped".into(),
        json!(dropped.saturating_add(tally.dropped)),
    );
    d.insert("lastAt".into(), json!(to_rfc3339(tally.last_at)));
    if !same {
        let samples = d.entry("otherSamples").or_insert_with(|| json!([]));
        if let Some(list) = samples.as_array_mut() {
            if list.len() < REPORT_SAMPLES && !list.contains(payload) {
                list.push(payload.clone());
            }
        }
    }
    Some(old)
}

/// Something a device reported that the audit trail keeps (seen/applied bookkeeping goes
/// through [`Store::record_device_progress`]).
#[derive(Debug, Clone, Copy)]
pub enum DeviceReport<'a> {
    /// A revoked device reconnected and was told to wipe (it cannot report over a refused stream).
    RefusedRevoked,
    Rejected {
        version: i64,
        error: &'a str,
    },
    Tampered {
        path: &'a str,
        kind: &'a str,
    },
    Wiped {
        removed: &'a [String],
        failed: &'a [String],
    },
    Warning {
        code: &'a str,
        detail: &'a str,
    },
}

/// Revokes every live device of the user, inside the caller's (deprovisioning) transaction.
/// Returns the revoked device ids.
pub(crate) async fn revoke_user_devices(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    reason: &str,
) -> StoreResult<Vec<String>> {
    let ids: Vec<String> =
        sqlx::query("SELECT id FROM devices WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(user_id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        // On the change feed, so that other replicas tell their connected agents too.
        let seq = super::changes::next_change_seq(tx).await?;
        sqlx::query("UPDATE devices SET revoked_at = $1, revoked_reason = $2, revoked_seq = $3 WHERE user_id = $4 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(reason)
            .bind(seq)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        super::changes::notify_change(tx).await?;
    }
    Ok(ids)
}
