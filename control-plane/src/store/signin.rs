//! Sign-in storage: each organisation's OpenID Connect configuration (client secret kept
//! encrypted; the store never sees it in clear) and browser session records (opaque JSON
//! owned by the sign-in layer), plus looking up the active user a verified claim names.

use crate::domain::AuditAction;
use serde_json::json;
use sqlx::Row;

use super::{audit, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Actor, IdentityClaim, MatchAttribute, Micros, OidcConfig};

impl Store {
    pub async fn oidc_config(&self, org_id: &str) -> StoreResult<Option<OidcConfig>> {
        let row = sqlx::query("SELECT org_id, issuer, client_id, client_secret, claim, match_attribute, updated_at FROM oidc_configs WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&self.read)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let claim: String = r.try_get("claim")?;
        let attr: String = r.try_get("match_attribute")?;
        Ok(Some(OidcConfig {
            org_id: r.try_get("org_id")?,
            issuer: r.try_get("issuer")?,
            client_id: r.try_get("client_id")?,
            client_secret_encrypted: r.try_get("client_secret")?,
            claim: IdentityClaim::parse(&claim)
                .ok_or_else(|| StoreError::Corrupt(format!("oidc claim {claim:?}")))?,
            match_attribute: MatchAttribute::parse(&attr)
                .ok_or_else(|| StoreError::Corrupt(format!("oidc match attribute {attr:?}")))?,
            updated_at: r.try_get("updated_at")?,
        }))
    }

    /// Creates or replaces the organisation's OpenID Connect configuration.
    pub async fn set_oidc_config(&self, config: &OidcConfig, actor: &Actor) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO oidc_configs (org_id, issuer, client_id, client_secret, claim, match_attribute, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, \
             client_id = excluded.client_id, client_secret = excluded.client_secret, claim = excluded.claim, \
             match_attribute = excluded.match_attribute, updated_at = excluded.updated_at",
        )
        .bind(&config.org_id)
        .bind(&config.issuer)
        .bind(&config.client_id)
        .bind(&config.client_secret_encrypted)
        .bind(config.claim.as_str())
        .bind(config.match_attribute.as_str())
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            &config.org_id,
            actor,
            AuditAction::OidcSet,
            "Org",
            Some(&config.org_id),
            json!({"issuer": config.issuer, "clientId": config.client_id,
                   "claim": config.claim.as_str(), "match": config.match_attribute.as_str()}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The id and userName of the active user whose `attribute` equals `value`. `Err(Ambiguous)`
    /// when several match (an email shared by two users must not pick one at random).
    pub async fn active_user_by(
        &self,
        org_id: &str,
        attribute: MatchAttribute,
        value: &str,
    ) -> StoreResult<Option<(String, String, bool)>> {
        let (column, key) = match attribute {
            MatchAttribute::UserName => ("user_name_key", value.to_lowercase()),
            MatchAttribute::Email => ("primary_email_key", value.to_lowercase()),
            MatchAttribute::ExternalId => ("external_id", value.to_string()),
        };
        if key.is_empty() {
            return Ok(None);
        }
        let rows = sqlx::query(&format!(
            "SELECT id, user_name, active FROM users WHERE org_id = $1 AND {column} = $2 AND deleted_at IS NULL"
        ))
        .bind(org_id)
        .bind(&key)
        .fetch_all(&self.read)
        .await?;
        match rows.as_slice() {
            [] => Ok(None),
            [r] => {
                let active: i64 = r.try_get("active")?;
                Ok(Some((
                    r.try_get("id")?,
                    r.try_get("user_name")?,
                    active != 0,
                )))
            }
            _ => Err(StoreError::Ambiguous(format!(
                "{} users share this {}",
                rows.len(),
                attribute.as_str()
            ))),
        }
    }

    /// Fills `primary_email_key` for users stored before it existed, with `extract` (the SCIM
    /// edge's reading of the attribute document). Returns how many rows were filled.
    pub async fn backfill_primary_emails(
        &self,
        extract: impl Fn(&serde_json::Value) -> Option<String>,
    ) -> StoreResult<usize> {
        let rows = sqlx::query(
            "SELECT id, attributes FROM users WHERE primary_email_key IS NULL LIMIT 10000",
        )
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        for r in &rows {
            let id: String = r.try_get("id")?;
            let attributes: String = r.try_get("attributes")?;
            let doc: serde_json::Value = serde_json::from_str(&attributes).unwrap_or_default();
            let email = extract(&doc).map(|e| e.to_lowercase()).unwrap_or_default();
            sqlx::query("UPDATE users SET primary_email_key = $1 WHERE id = $2 AND primary_email_key IS NULL")
                .bind(email)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// The user's primary email as indexed for sign-in (lower-cased), if any.
    pub async fn primary_email_of(&self, user_id: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query("SELECT primary_email_key FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get::<Option<String>, _>("primary_email_key"))
                .transpose()?
                .flatten()
                .filter(|e| !e.is_empty()),
        )
    }

    pub async fn load_web_session(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query("SELECT data FROM web_sessions WHERE id = $1 AND expires_at > $2")
                .bind(id)
                .bind(now_micros())
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get("data"))
                .transpose()?,
        )
    }

    /// Creates or replaces a session record; expired records are swept as sessions are written.
    pub async fn save_web_session(
        &self,
        id: &str,
        data: &str,
        expires_at: Micros,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id)
        .bind(data)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_web_session(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM web_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
