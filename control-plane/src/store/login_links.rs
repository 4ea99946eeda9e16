//! One-time owner sign-in links for the console (`admin login-link`): minted with 256 bits of
//! randomness, kept only as a hash, valid for minutes, usable once — the redemption is one
//! conditional UPDATE, so two browsers racing with the same link cannot both get in.

use serde_json::json;
use sqlx::Row;

use super::secrets::{mint_secret, sha256_hex};
use super::{audit, new_id, Store, StoreResult};
use crate::domain::{now_micros, Actor, AuditAction, Micros};

/// Every login link's secret starts with this.
pub const LOGIN_LINK_PREFIX: &str = "pal_login_";
/// How long a link works.
pub const LOGIN_LINK_LIFETIME: Micros = 10 * 60 * 1_000_000;

/// A redeemed link: who it signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemedLink {
    pub id: String,
    pub org_id: String,
}

impl Store {
    /// Mints a link for the organisation; returns its secret (shown once) and expiry.
    pub async fn create_login_link(
        &self,
        org_id: &str,
        actor: &Actor,
    ) -> StoreResult<(String, Micros)> {
        let secret = mint_secret(LOGIN_LINK_PREFIX);
        let id = new_id();
        let now = now_micros();
        let expires = now + LOGIN_LINK_LIFETIME;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO admin_login_links (id, org_id, secret_sha256, created_at, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(org_id)
        .bind(sha256_hex(&secret))
        .bind(now)
        .bind(actor.audit_name())
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::AdminLoginLink,
            "LoginLink",
            Some(&id),
            json!({"expiresAt": crate::domain::to_rfc3339(expires)}),
        )
        .await?;
        tx.commit().await?;
        Ok((secret, expires))
    }

    /// Uses a link: the first call within its lifetime gets who it signs in (and the sign-in is
    /// audited with `source`); every other call gets nothing.
    pub async fn redeem_login_link(
        &self,
        secret: &str,
        source: &str,
    ) -> StoreResult<Option<RedeemedLink>> {
        if !secret.starts_with(LOGIN_LINK_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        // A cheap indexed read first: unknown links never reach the single writer.
        let known = {
            let _permit = self.unauthenticated_read().await?;
            sqlx::query(
                "SELECT id FROM admin_login_links WHERE secret_sha256 = $1 AND used_at IS NULL",
            )
            .bind(sha256_hex(secret))
            .fetch_optional(&self.read)
            .await?
            .is_some()
        };
        if !known {
            return Ok(None);
        }
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE admin_login_links SET used_at = $1 \
             WHERE secret_sha256 = $2 AND used_at IS NULL AND expires_at > $3 RETURNING id, org_id",
        )
        .bind(now)
        .bind(sha256_hex(secret))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let link = RedeemedLink {
            id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
        };
        let actor = Actor::Admin {
            name: format!("owner-link:{}", link.id),
            source: source.to_owned(),
        };
        audit::record(
            &mut tx,
            &link.org_id,
            &actor,
            AuditAction::SignIn,
            "LoginLink",
            Some(&link.id),
            json!({"role": "owner"}),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(link))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_works_once_and_only_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("l.db").display()))
            .await
            .unwrap();
        let (org, _) = store.ensure_default_org().await.unwrap();
        let actor = Actor::Operator { login: "t".into() };
        let (secret, _) = store.create_login_link(&org.id, &actor).await.unwrap();
        assert!(store
            .redeem_login_link("pal_login_nope", "x")
            .await
            .unwrap()
            .is_none());
        let first = store.redeem_login_link(&secret, "127.0.0.1").await.unwrap();
        assert_eq!(first.map(|l| l.org_id), Some(org.id.clone()));
        assert!(store
            .redeem_login_link(&secret, "127.0.0.1")
            .await
            .unwrap()
            .is_none());
        // An expired link is refused.
        let (old, _) = store.create_login_link(&org.id, &actor).await.unwrap();
        sqlx::query("UPDATE admin_login_links SET expires_at = 0 WHERE used_at IS NULL")
            .execute(&store.write)
            .await
            .unwrap();
        assert!(store.redeem_login_link(&old, "x").await.unwrap().is_none());
        store.close().await;
    }
}
