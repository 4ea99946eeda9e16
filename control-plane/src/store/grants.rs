//! Interactive sign-in grants (RFC 8628-shaped): the agent starts one and holds its device
//! code (a 256-bit secret, stored hashed); the person opens the user code's page, signs in
//! with the IdP and confirms the device; the agent's next poll then enrolls (or, for an
//! enrolled unverified device, verifies) in one transaction that re-checks the person.

use crate::domain::AuditAction;
use rand::Rng;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::enrollment::{audit_refusal, bind_device, clip, install_key_hash, lock_user};
use super::enrollment::{Binding, EnrollContext, EnrollRefusal};
use super::secrets::{mint_secret, sha256_hex};
use super::{audit, new_id, Store, StoreError, StoreResult};
use crate::domain::{
    now_micros, Actor, DeviceGrant, DeviceInfo, EnrollMethod, Enrollment, GrantStatus, Micros,
    SignedInPerson,
};

/// Every device code starts with this.
pub const DEVICE_CODE_PREFIX: &str = "pal_dc_";
/// How long a person has to sign in and confirm.
pub const GRANT_LIFETIME_MICROS: Micros = 10 * 60 * 1_000_000;
/// The agent polls no faster than this (RFC 8628 `interval`).
pub const POLL_INTERVAL_SECONDS: i64 = 5;
/// At most this many sign-ins may wait at once: an unauthenticated peer can start them, so
/// their number (and the writes they cost) is bounded whatever the source addresses.
pub const MAX_PENDING_GRANTS: i64 = 10_000;
/// And at most this many from one source address, so one peer cannot take them all.
pub const MAX_PENDING_GRANTS_PER_SOURCE: i64 = 200;
/// User codes: 8 letters of a 20-letter alphabet without vowels (no words, no 0/O or 1/I
/// confusion): 20^8 ≈ 2.6e10 codes, valid 10 minutes, attempts rate-limited per source.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A new user code, `XXXX-XXXX`.
fn new_user_code() -> String {
    let mut rng = rand::rng();
    let letters: String = (0..8)
        .map(|_| USER_CODE_ALPHABET[rng.random_range(0..USER_CODE_ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// What a person typed, as stored: upper-case, letters only, `XXXX-XXXX`; `None` if it
/// cannot be a code.
pub fn normalise_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .take(9)
        .collect();
    (letters.len() == 8 && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}

const GRANT_COLUMNS: &str = "id, org_id, user_code, device_id, hostname, os, agent_version, \
     source_addr, status, user_id, created_at, expires_at";

fn grant_from_row(r: &AnyRow) -> StoreResult<DeviceGrant> {
    let status: String = r.try_get("status")?;
    Ok(DeviceGrant {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        user_code: r.try_get("user_code")?,
        device_id: r.try_get("device_id")?,
        hostname: r.try_get("hostname")?,
        os: r.try_get("os")?,
        agent_version: r.try_get("agent_version")?,
        source_addr: r.try_get("source_addr")?,
        status: GrantStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("grant status {status:?}")))?,
        user_id: r.try_get("user_id")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// A grant just started: the device code goes to the agent only.
#[derive(Debug, Clone)]
pub struct StartedGrant {
    pub grant: DeviceGrant,
    pub device_code: String,
}

/// What the agent's poll learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// Nobody has confirmed yet.
    Pending,
    /// The agent polls faster than [`POLL_INTERVAL_SECONDS`].
    SlowDown,
    /// Refused, expired, unknown or already collected: start again.
    Refused(String),
    /// A new device (its credential shown once).
    Enrolled(Enrollment),
    /// The enrolled device is now verified (it keeps its credential).
    Verified {
        device_id: String,
        user_name: String,
    },
}

impl Store {
    /// Starts a sign-in grant for the organisation. `device_id` is set when an enrolled,
    /// unverified device asks its person to confirm it.
    pub async fn start_device_grant(
        &self,
        org_id: &str,
        device_id: Option<&str>,
        ctx: &EnrollContext<'_>,
    ) -> StoreResult<Option<StartedGrant>> {
        let device_code = mint_secret(DEVICE_CODE_PREFIX);
        let now = now_micros();
        // Both caps from one read: all waiting sign-ins, and those from this address.
        let permit = self.unauthenticated_read().await?;
        let counts = sqlx::query(
            "SELECT COUNT(*) AS n, COUNT(CASE WHEN source_addr = $2 THEN 1 END) AS mine \
             FROM device_grants WHERE status = 'pending' AND expires_at > $1",
        )
        .bind(now)
        .bind(clip(ctx.source, 64))
        .fetch_one(&self.read)
        .await?;
        drop(permit);
        let (pending, from_source): (i64, i64) = (counts.try_get("n")?, counts.try_get("mine")?);
        if pending >= MAX_PENDING_GRANTS || from_source >= MAX_PENDING_GRANTS_PER_SOURCE {
            return Ok(None);
        }
        let info: &DeviceInfo = ctx.info;
        let mut tx = self.begin_write().await?;
        // Expired grants are of no use to anyone; sweep them as new ones come.
        sqlx::query("DELETE FROM device_grants WHERE expires_at < $1")
            .bind(now - GRANT_LIFETIME_MICROS)
            .execute(&mut *tx)
            .await?;
        let mut user_code = new_user_code();
        for _ in 0..8 {
            let taken = sqlx::query(
                "SELECT 1 AS x FROM device_grants WHERE user_code = $1 AND status = 'pending' AND expires_at > $2",
            )
            .bind(&user_code)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if !taken {
                break;
            }
            user_code = new_user_code();
        }
        let grant = DeviceGrant {
            id: new_id(),
            org_id: org_id.to_string(),
            user_code,
            device_id: device_id.map(str::to_string),
            hostname: clip(&info.hostname, 255),
            os: clip(&info.os, 64),
            agent_version: clip(&info.agent_version, 64),
            source_addr: clip(ctx.source, 64),
            status: GrantStatus::Pending,
            user_id: None,
            created_at: now,
            expires_at: now + GRANT_LIFETIME_MICROS,
        };
        sqlx::query(
            "INSERT INTO device_grants (id, org_id, device_code_sha256, user_code, install_key_sha256, device_id, hostname, os, \
             agent_version, source_addr, status, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&grant.id)
        .bind(org_id)
        .bind(sha256_hex(&device_code))
        .bind(&grant.user_code)
        .bind(install_key_hash(ctx.install_key).unwrap_or_default())
        .bind(&grant.device_id)
        .bind(&grant.hostname)
        .bind(&grant.os)
        .bind(&grant.agent_version)
        .bind(&grant.source_addr)
        .bind(GrantStatus::Pending.as_str())
        .bind(grant.created_at)
        .bind(grant.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(StartedGrant { grant, device_code }))
    }

    /// The pending, unexpired grant with this user code (read pool only).
    pub async fn pending_grant_by_user_code(
        &self,
        user_code: &str,
    ) -> StoreResult<Option<DeviceGrant>> {
        sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM device_grants WHERE user_code = $1 AND status = 'pending' AND expires_at > $2"
        ))
        .bind(user_code)
        .bind(now_micros())
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
    }

    pub async fn device_grant(&self, id: &str) -> StoreResult<Option<DeviceGrant>> {
        sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM device_grants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
    }

    /// The signed-in person's decision on a pending grant. Approval re-checks that the person
    /// is active and, for a device asking to be verified, that it is theirs and live.
    /// `Ok(Err(reason))`: the grant was refused (and audited).
    pub async fn decide_device_grant(
        &self,
        grant_id: &str,
        person: &SignedInPerson,
        approve: bool,
        source: &str,
    ) -> StoreResult<Result<DeviceGrant, EnrollRefusal>> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let grant = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM device_grants WHERE id = $1 AND org_id = $2"
        ))
        .bind(grant_id)
        .bind(&person.org_id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound)?;
        if grant.status != GrantStatus::Pending || grant.expires_at <= now {
            return Err(StoreError::NotFound);
        }
        let actor = Actor::Person {
            user_id: person.user_id.clone(),
            user_name: person.user_name.clone(),
        };
        let mut refusal = None;
        if approve {
            match lock_user(&mut tx, &person.org_id, &person.user_id).await? {
                Some(u) if u.active => {}
                Some(u) => refusal = Some(EnrollRefusal::InactiveUser(u.user_name)),
                None => refusal = Some(EnrollRefusal::UnknownUser(person.user_name.clone())),
            }
            if let (None, Some(device_id)) = (&refusal, &grant.device_id) {
                let owner =
                    sqlx::query("SELECT user_id FROM devices WHERE id = $1 AND revoked_at IS NULL")
                        .bind(device_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get::<String, _>("user_id"))
                        .transpose()?;
                if owner.as_deref() != Some(person.user_id.as_str()) {
                    refusal = Some(EnrollRefusal::DeviceMismatch);
                }
            }
        }
        let status = if approve && refusal.is_none() {
            GrantStatus::Approved
        } else {
            GrantStatus::Denied
        };
        let decided = sqlx::query(
            "UPDATE device_grants SET status = $1, user_id = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(&person.user_id)
        .bind(now)
        .bind(&grant.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if decided != 1 {
            // Someone decided first: the first decision stands.
            return Err(StoreError::NotFound);
        }
        let action = match (approve, &refusal) {
            (true, None) => AuditAction::DeviceAuthorize,
            (true, Some(_)) => AuditAction::DeviceAuthorizeRefused,
            (false, _) => AuditAction::DeviceDeny,
        };
        audit::record(
            &mut tx,
            &person.org_id,
            &actor,
            action,
            "DeviceGrant",
            Some(&grant.id),
            json!({"userCode": grant.user_code, "hostname": grant.hostname, "os": grant.os,
                   "deviceId": grant.device_id, "agentSource": grant.source_addr,
                   "browserSource": clip(source, 64),
                   "reason": refusal.as_ref().map(|r| r.to_string())}),
        )
        .await?;
        tx.commit().await?;
        Ok(match refusal {
            Some(r) => Err(r),
            None => Ok(DeviceGrant {
                status,
                user_id: Some(person.user_id.clone()),
                ..grant
            }),
        })
    }

    /// The agent's poll with its device code. An approved grant is consumed here: the device
    /// is created (or verified) in the same transaction, after re-checking the person.
    pub async fn poll_device_grant(
        &self,
        device_code: &str,
        install_key: Option<&str>,
        info: &DeviceInfo,
        source: &str,
    ) -> StoreResult<PollOutcome> {
        let gone =
            || PollOutcome::Refused("the sign-in expired or was refused; start again".into());
        if !device_code.starts_with(DEVICE_CODE_PREFIX) || device_code.len() > 200 {
            return Ok(gone());
        }
        let hash = sha256_hex(device_code);
        let query = format!(
            "SELECT {GRANT_COLUMNS}, install_key_sha256, last_poll_at FROM device_grants WHERE device_code_sha256 = $1"
        );
        // Unknown codes are answered from the read pool.
        let permit = self.unauthenticated_read().await?;
        let row = sqlx::query(&query)
            .bind(&hash)
            .fetch_optional(&self.read)
            .await?;
        drop(permit);
        let Some(row) = row else {
            return Ok(gone());
        };
        let grant = grant_from_row(&row)?;
        let now = now_micros();
        if grant.expires_at <= now {
            return Ok(gone());
        }
        match grant.status {
            GrantStatus::Denied | GrantStatus::Consumed => return Ok(gone()),
            GrantStatus::Pending => {
                let last: Option<i64> = row.try_get("last_poll_at")?;
                let too_soon =
                    last.is_some_and(|l| now - l < (POLL_INTERVAL_SECONDS - 1) * 1_000_000);
                sqlx::query("UPDATE device_grants SET last_poll_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&grant.id)
                    .execute(&self.write)
                    .await?;
                return Ok(if too_soon {
                    PollOutcome::SlowDown
                } else {
                    PollOutcome::Pending
                });
            }
            GrantStatus::Approved => {}
        }
        // The installation key must be the one that started the grant.
        let started_with: String = row.try_get("install_key_sha256")?;
        if install_key_hash(install_key).unwrap_or_default() != started_with {
            return Ok(gone());
        }
        let mut tx = self.begin_write().await?;
        // Consume it first: of two concurrent polls, exactly one sees the row change, and the
        // person is the one recorded by that same statement (not the earlier read).
        let claimed = sqlx::query(
            "UPDATE device_grants SET status = 'consumed' WHERE id = $1 AND status = 'approved' RETURNING user_id",
        )
        .bind(&grant.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user_id) = claimed
            .map(|r| r.try_get::<Option<String>, _>("user_id"))
            .transpose()?
            .flatten()
        else {
            return Ok(gone());
        };
        let org_slug: String = sqlx::query("SELECT slug FROM orgs WHERE id = $1")
            .bind(&grant.org_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("slug")?;
        let ctx = EnrollContext {
            info,
            install_key,
            source,
        };
        let actor = Actor::Person {
            user_id: user_id.clone(),
            user_name: String::new(),
        };
        let outcome =
            match &grant.device_id {
                None => match bind_device(
                    &mut tx,
                    Binding {
                        org_id: &grant.org_id,
                        org_slug: &org_slug,
                        user_id: &user_id,
                        method: EnrollMethod::SignIn,
                        verified: true,
                        actor: actor.clone(),
                        ctx: &ctx,
                        via: json!({"grantId": grant.id, "userCode": grant.user_code}),
                    },
                )
                .await?
                {
                    Ok(e) => Ok(PollOutcome::Enrolled(e)),
                    Err(r) => Err(r),
                },
                Some(device_id) => verify_device(
                    &mut tx,
                    &grant.org_id,
                    device_id,
                    &user_id,
                    json!({"method": "sign-in", "grantId": grant.id, "source": grant.source_addr}),
                )
                .await?,
            };
        match outcome {
            Ok(o) => {
                tx.commit().await?;
                self.committed_change();
                Ok(o)
            }
            Err(refusal) => {
                audit_refusal(
                    &mut tx,
                    &grant.org_id,
                    &actor,
                    EnrollMethod::SignIn,
                    &refusal,
                    &ctx,
                )
                .await?;
                tx.commit().await?;
                Ok(gone())
            }
        }
    }
}

/// Marks an enrolled device verified, after re-checking its person, and gives the user a new
/// policy version on the change feed, so the device's stream sends the snapshot that now
/// carries the API key.
pub(crate) async fn verify_device(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org_id: &str,
    device_id: &str,
    user_id: &str,
    detail: serde_json::Value,
) -> StoreResult<Result<PollOutcome, EnrollRefusal>> {
    let user = match lock_user(tx, org_id, user_id).await? {
        Some(u) if u.active => u,
        Some(u) => return Ok(Err(EnrollRefusal::InactiveUser(u.user_name))),
        None => return Ok(Err(EnrollRefusal::UnknownUser(user_id.to_string()))),
    };
    let now = now_micros();
    let done = sqlx::query(
        "UPDATE devices SET verified = 1, verified_at = $1 WHERE id = $2 AND user_id = $3 AND org_id = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(device_id)
    .bind(user_id)
    .bind(org_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if done != 1 {
        return Ok(Err(EnrollRefusal::DeviceMismatch));
    }
    let seq = super::changes::next_change_seq(tx).await?;
    sqlx::query("UPDATE user_policies SET version = version + 1, change_seq = $1, updated_at = $2 WHERE user_id = $3")
        .bind(seq)
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    super::changes::notify_change(tx).await?;
    audit::record(
        tx,
        org_id,
        &Actor::Person {
            user_id: user.id.clone(),
            user_name: user.user_name.clone(),
        },
        AuditAction::DeviceVerify,
        "Device",
        Some(device_id),
        detail,
    )
    .await?;
    Ok(Ok(PollOutcome::Verified {
        device_id: device_id.to_string(),
        user_name: user.user_name,
    }))
}

impl Store {
    /// The signed-in person confirms that an enrolled, unverified device is theirs (the
    /// page linked from the device's own managed settings).
    pub async fn verify_device_by_person(
        &self,
        device_id: &str,
        person: &SignedInPerson,
        source: &str,
    ) -> StoreResult<Result<(), EnrollRefusal>> {
        let mut tx = self.begin_write().await?;
        let outcome = verify_device(
            &mut tx,
            &person.org_id,
            device_id,
            &person.user_id,
            json!({"method": "confirm-page", "browserSource": clip(source, 64)}),
        )
        .await?;
        match outcome {
            Ok(_) => {
                tx.commit().await?;
                // The verification is a new version of the person's policy (it carries the key).
                self.committed_change();
                Ok(Ok(()))
            }
            Err(refusal) => {
                audit::record(
                    &mut tx,
                    &person.org_id,
                    &Actor::Person {
                        user_id: person.user_id.clone(),
                        user_name: person.user_name.clone(),
                    },
                    AuditAction::DeviceVerifyRefused,
                    "Device",
                    Some(device_id),
                    json!({"reason": refusal.to_string(), "browserSource": clip(source, 64)}),
                )
                .await?;
                tx.commit().await?;
                Ok(Err(refusal))
            }
        }
    }

    /// A device as its person's confirmation page shows it: only when it is theirs, live and
    /// not yet verified.
    pub async fn unverified_device_of(
        &self,
        device_id: &str,
        person: &SignedInPerson,
    ) -> StoreResult<Option<crate::domain::Device>> {
        Ok(self
            .devices_of_user(&person.user_id)
            .await?
            .into_iter()
            .find(|d| d.id == device_id && !d.verified && d.revoked_at.is_none()))
    }
}
