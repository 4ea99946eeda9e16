//! Per-user activation codes ("invitations"): minted for one person, single use, expiring,
//! revocable, stored only as SHA-256. Redeeming one enrolls a verified device for exactly
//! that person, in the same transaction that marks the code used.

use crate::domain::AuditAction;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::enrollment::{audit_refusal, bind_device, Binding, EnrollContext, EnrollRefusal};
use super::secrets::{mint_secret, pick_credential, sha256_hex, shown_prefix};
use super::{audit, new_id, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Actor, EnrollMethod, Enrollment, Invite, Micros};

/// Every activation code starts with this.
pub const ACTIVATION_CODE_PREFIX: &str = "pal_act_";

const INVITE_COLUMNS: &str = "i.id, i.org_id, i.user_id, u.user_name, i.prefix, i.created_at, \
     i.expires_at, i.used_at, i.used_device_id, i.revoked_at";

fn invite_from_row(r: &AnyRow) -> StoreResult<Invite> {
    Ok(Invite {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        user_id: r.try_get("user_id")?,
        user_name: r.try_get("user_name")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
        used_device_id: r.try_get("used_device_id")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    /// Mints an activation code for an active user. Returns the listing and the code (shown once).
    pub async fn create_invite(
        &self,
        org_id: &str,
        user_id: &str,
        expires_at: Micros,
        actor: &Actor,
    ) -> StoreResult<(Invite, String)> {
        let code = mint_secret(ACTIVATION_CODE_PREFIX);
        let mut tx = self.begin_write().await?;
        let user = super::enrollment::lock_user(&mut tx, org_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if !user.active {
            return Err(StoreError::InvalidReference(format!(
                "user {:?} is not active",
                user.user_name
            )));
        }
        let invite = Invite {
            id: new_id(),
            org_id: org_id.to_string(),
            user_id: user.id.clone(),
            user_name: user.user_name.clone(),
            prefix: shown_prefix(&code, ACTIVATION_CODE_PREFIX),
            created_at: now_micros(),
            expires_at,
            used_at: None,
            used_device_id: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO invites (id, org_id, user_id, prefix, code_sha256, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&invite.id)
        .bind(org_id)
        .bind(&invite.user_id)
        .bind(&invite.prefix)
        .bind(sha256_hex(&code))
        .bind(invite.created_at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::InviteCreate,
            "Invite",
            Some(&invite.id),
            json!({"userId": invite.user_id, "userName": invite.user_name, "prefix": invite.prefix, "expiresAt": expires_at}),
        )
        .await?;
        tx.commit().await?;
        Ok((invite, code))
    }

    pub async fn list_invites(&self, org_id: &str) -> StoreResult<Vec<Invite>> {
        sqlx::query(&format!(
            "SELECT {INVITE_COLUMNS} FROM invites i JOIN users u ON u.id = i.user_id WHERE i.org_id = $1 ORDER BY i.created_at, i.id"
        ))
        .bind(org_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(invite_from_row)
        .collect()
    }

    /// Revokes an unused activation code by id or prefix.
    pub async fn revoke_invite(
        &self,
        org_id: &str,
        id_or_prefix: &str,
        actor: &Actor,
    ) -> StoreResult<Invite> {
        let invite = pick_credential(self.list_invites(org_id).await?, id_or_prefix, |i| {
            (&i.id, &i.prefix)
        })?;
        if invite.revoked_at.is_some() {
            return Ok(invite);
        }
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&invite.id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::InviteRevoke,
            "Invite",
            Some(&invite.id),
            json!({"prefix": invite.prefix, "userName": invite.user_name}),
        )
        .await?;
        tx.commit().await?;
        Ok(Invite {
            revoked_at: Some(now),
            ..invite
        })
    }

    /// Redeems an activation code: a verified device for exactly the code's person, once.
    pub async fn enroll_with_invite(
        &self,
        code: &str,
        ctx: &EnrollContext<'_>,
    ) -> StoreResult<Result<Enrollment, EnrollRefusal>> {
        if !code.starts_with(ACTIVATION_CODE_PREFIX) || code.len() > 200 {
            return Ok(Err(EnrollRefusal::InvalidCode));
        }
        let hash = sha256_hex(code);
        const QUERY: &str =
            "SELECT i.id, i.org_id, i.user_id, i.expires_at, i.used_at, i.revoked_at, o.slug \
             FROM invites i JOIN orgs o ON o.id = i.org_id WHERE i.code_sha256 = $1";
        // Read pool first: a guessed code never takes the writer.
        let permit = self.unauthenticated_read().await?;
        let known = sqlx::query(QUERY)
            .bind(&hash)
            .fetch_optional(&self.read)
            .await?
            .is_some();
        drop(permit);
        if !known {
            return Ok(Err(EnrollRefusal::InvalidCode));
        }
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(QUERY)
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Err(EnrollRefusal::InvalidCode));
        };
        let invite_id: String = row.try_get("id")?;
        let org_id: String = row.try_get("org_id")?;
        let org_slug: String = row.try_get("slug")?;
        let user_id: String = row.try_get("user_id")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let used: Option<i64> = row.try_get("used_at")?;
        let revoked: Option<i64> = row.try_get("revoked_at")?;
        let actor = Actor::Invite {
            id: invite_id.clone(),
        };
        let result = if used.is_some() || revoked.is_some() {
            Err(EnrollRefusal::InvalidCode)
        } else if expires_at <= now_micros() {
            Err(EnrollRefusal::ExpiredCode)
        } else {
            bind_device(
                &mut tx,
                Binding {
                    org_id: &org_id,
                    org_slug: &org_slug,
                    user_id: &user_id,
                    method: EnrollMethod::ActivationCode,
                    verified: true,
                    actor: actor.clone(),
                    ctx,
                    via: json!({"inviteId": invite_id}),
                },
            )
            .await?
        };
        match result {
            Ok(enrollment) => {
                // Guarded: of two concurrent redemptions (or a redemption and a revocation),
                // exactly one changes the row; the other rolls back and gets no device.
                let claimed = sqlx::query(
                    "UPDATE invites SET used_at = $1, used_device_id = $2 WHERE id = $3 \
                     AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
                )
                .bind(now_micros())
                .bind(&enrollment.device_id)
                .bind(&invite_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if claimed != 1 {
                    tx.rollback().await?;
                    return Ok(Err(EnrollRefusal::InvalidCode));
                }
                tx.commit().await?;
                Ok(Ok(enrollment))
            }
            Err(refusal) => {
                audit_refusal(
                    &mut tx,
                    &org_id,
                    &actor,
                    EnrollMethod::ActivationCode,
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
