//! Admin API tokens: minted with 256 bits of randomness, scoped to one admin role, stored only
//! as a SHA-256 hash, listed by label and prefix with their last use, revoked at once.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::secrets::{mint_secret, pick_credential, sha256_hex, shown_prefix};
use super::{audit, new_id, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Actor, AuditAction, Micros};

/// Every admin API token starts with this, so secret scanners and people can recognise one.
pub const API_TOKEN_PREFIX: &str = "pal_admin_";
/// `last_used_at` is refreshed at most this often, so authentication stays a read.
const LAST_USED_GRANULARITY: Micros = 60 * 1_000_000;

/// An admin API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub org_id: String,
    pub label: String,
    /// `admin`, `security` or `read-only`.
    pub role: String,
    pub prefix: String,
    pub created_at: Micros,
    pub created_by: String,
    pub last_used_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
}

/// A freshly minted token: the secret is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub token: ApiToken,
    pub secret: String,
}

const COLUMNS: &str =
    "id, org_id, label, role, prefix, created_at, created_by, last_used_at, revoked_at";

fn from_row(r: &AnyRow) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        label: r.try_get("label")?,
        role: r.try_get("role")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    /// Mints a token for the organisation with `role` (checked by the caller).
    pub async fn create_api_token(
        &self,
        org_id: &str,
        label: &str,
        role: &str,
        actor: &Actor,
    ) -> StoreResult<NewApiToken> {
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 200 || label.chars().any(char::is_control) {
            return Err(StoreError::InvalidReference(
                "a token label must be 1-200 printable characters".to_string(),
            ));
        }
        let secret = mint_secret(API_TOKEN_PREFIX);
        let token = ApiToken {
            id: new_id(),
            org_id: org_id.to_string(),
            label: label.to_string(),
            role: role.to_string(),
            prefix: shown_prefix(&secret, API_TOKEN_PREFIX),
            created_at: now_micros(),
            created_by: actor.audit_name(),
            last_used_at: None,
            revoked_at: None,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO admin_api_tokens (id, org_id, label, role, prefix, secret_sha256, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(org_id)
        .bind(&token.label)
        .bind(&token.role)
        .bind(&token.prefix)
        .bind(sha256_hex(&secret))
        .bind(token.created_at)
        .bind(&token.created_by)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::ApiTokenCreate,
            "ApiToken",
            Some(&token.id),
            json!({"label": token.label, "role": token.role, "prefix": token.prefix}),
        )
        .await?;
        tx.commit().await?;
        Ok(NewApiToken { token, secret })
    }

    /// The organisation's tokens, oldest first.
    pub async fn list_api_tokens(&self, org_id: &str) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM admin_api_tokens WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes the token whose id or prefix is given. Revoking a revoked token is a no-op.
    pub async fn revoke_api_token(
        &self,
        org_id: &str,
        id_or_prefix: &str,
        actor: &Actor,
    ) -> StoreResult<ApiToken> {
        let token = pick_credential(self.list_api_tokens(org_id).await?, id_or_prefix, |t| {
            (&t.id, &t.prefix)
        })?;
        if token.revoked_at.is_some() {
            return Ok(token);
        }
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE admin_api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&token.id)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::ApiTokenRevoke,
            "ApiToken",
            Some(&token.id),
            json!({"label": token.label, "prefix": token.prefix}),
        )
        .await?;
        tx.commit().await?;
        Ok(ApiToken {
            revoked_at: Some(now),
            ..token
        })
    }

    /// The unrevoked token with this secret. One indexed read per request on the limited
    /// unauthenticated pool: no cache, so a revocation takes effect on the next request.
    pub async fn authenticate_api_token(&self, secret: &str) -> StoreResult<Option<ApiToken>> {
        if !secret.starts_with(API_TOKEN_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let row = {
            let _permit = self.unauthenticated_read().await?;
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM admin_api_tokens WHERE secret_sha256 = $1 AND revoked_at IS NULL"
            ))
            .bind(sha256_hex(secret))
            .fetch_optional(&self.read)
            .await?
        };
        let Some(row) = row else { return Ok(None) };
        let token = from_row(&row)?;
        let now = now_micros();
        if token
            .last_used_at
            .is_none_or(|t| now - t > LAST_USED_GRANULARITY)
        {
            sqlx::query("UPDATE admin_api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&token.id)
                .execute(&self.write)
                .await?;
        }
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_hashed_shown_once_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let (org, _) = store.ensure_default_org().await.unwrap();
        let actor = Actor::Operator { login: "t".into() };
        let new = store
            .create_api_token(&org.id, "ci", "read-only", &actor)
            .await
            .unwrap();
        assert!(new.secret.starts_with(API_TOKEN_PREFIX));
        // Only the hash is stored.
        let stored: Vec<String> = sqlx::query_scalar("SELECT secret_sha256 FROM admin_api_tokens")
            .fetch_all(&store.read)
            .await
            .unwrap();
        assert_eq!(stored, vec![sha256_hex(&new.secret)]);
        let auth = store.authenticate_api_token(&new.secret).await.unwrap();
        assert_eq!(auth.map(|t| t.role), Some("read-only".to_owned()));
        assert!(store
            .authenticate_api_token("pal_admin_nope")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .create_api_token(&org.id, " ", "admin", &actor)
            .await
            .is_err());
        store
            .revoke_api_token(&org.id, &new.token.prefix, &actor)
            .await
            .unwrap();
        assert!(store
            .authenticate_api_token(&new.secret)
            .await
            .unwrap()
            .is_none());
        let listed = store.list_api_tokens(&org.id).await.unwrap();
        assert!(listed[0].revoked_at.is_some() && listed[0].last_used_at.is_some());
        store.close().await;
    }
}
