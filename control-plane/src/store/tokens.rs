//! SCIM bearer credentials: minted with 256 bits of randomness, stored only as a SHA-256 hash,
//! listed by label and prefix, revoked at once.

use crate::domain::AuditAction;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::secrets::{mint_secret, pick_credential, sha256_hex, shown_prefix};
use super::{audit, new_id, Store, StoreError, StoreResult};
use crate::domain::{now_micros, Actor, Micros, ScimToken};

/// Every SCIM token starts with this, so secret scanners and people can recognise one.
pub const SCIM_TOKEN_PREFIX: &str = "pal_scim_";
/// `last_used_at` is refreshed at most this often, so authentication stays a read.
const LAST_USED_GRANULARITY: Micros = 60 * 1_000_000;

/// A freshly minted token: the secret is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewScimToken {
    pub token: ScimToken,
    pub secret: String,
}

/// A token that authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedToken {
    pub token_id: String,
    pub org_id: String,
    pub label: String,
}

fn token_from_row(r: &AnyRow) -> StoreResult<ScimToken> {
    Ok(ScimToken {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        label: r.try_get("label")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

const TOKEN_COLUMNS: &str = "id, org_id, label, prefix, created_at, last_used_at, revoked_at";

impl Store {
    /// Mints a token for the organisation.
    pub async fn create_scim_token(
        &self,
        org_id: &str,
        label: &str,
        actor: &Actor,
    ) -> StoreResult<NewScimToken> {
        let label = label.trim();
        if label.is_empty() || label.len() > 200 {
            return Err(StoreError::InvalidReference(
                "a token label must be 1-200 characters".to_string(),
            ));
        }
        let secret = mint_secret(SCIM_TOKEN_PREFIX);
        let token = ScimToken {
            id: new_id(),
            org_id: org_id.to_string(),
            label: label.to_string(),
            prefix: shown_prefix(&secret, SCIM_TOKEN_PREFIX),
            created_at: now_micros(),
            last_used_at: None,
            revoked_at: None,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO scim_tokens (id, org_id, label, prefix, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(org_id)
        .bind(&token.label)
        .bind(&token.prefix)
        .bind(sha256_hex(&secret))
        .bind(token.created_at)
        .execute(&mut *tx)
        .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::ScimTokenCreate,
            "ScimToken",
            Some(&token.id),
            json!({"label": label, "prefix": token.prefix}),
        )
        .await?;
        tx.commit().await?;
        Ok(NewScimToken { token, secret })
    }

    pub async fn list_scim_tokens(&self, org_id: &str) -> StoreResult<Vec<ScimToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM scim_tokens WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes the token whose id or prefix is given. Revoking a revoked token is a no-op.
    pub async fn revoke_scim_token(
        &self,
        org_id: &str,
        id_or_prefix: &str,
        actor: &Actor,
    ) -> StoreResult<ScimToken> {
        let token = pick_credential(self.list_scim_tokens(org_id).await?, id_or_prefix, |t| {
            (&t.id, &t.prefix)
        })?;
        if token.revoked_at.is_some() {
            return Ok(token);
        }
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE scim_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&token.id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            org_id,
            actor,
            AuditAction::ScimTokenRevoke,
            "ScimToken",
            Some(&token.id),
            json!({"label": token.label, "prefix": token.prefix}),
        )
        .await?;
        tx.commit().await?;
        Ok(ScimToken {
            revoked_at: Some(now),
            ..token
        })
    }

    /// Looks up an unrevoked token by its secret. One indexed read per request: no cache, so a
    /// revocation made by any process takes effect on the very next request.
    pub async fn authenticate_scim_token(
        &self,
        secret: &str,
    ) -> StoreResult<Option<AuthenticatedToken>> {
        if !secret.starts_with(SCIM_TOKEN_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT id, org_id, label, last_used_at FROM scim_tokens WHERE secret_sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(sha256_hex(secret))
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let auth = AuthenticatedToken {
            token_id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            label: row.try_get("label")?,
        };
        let last_used: Option<Micros> = row.try_get("last_used_at")?;
        let now = now_micros();
        if last_used.is_none_or(|t| now - t > LAST_USED_GRANULARITY) {
            sqlx::query("UPDATE scim_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&auth.token_id)
                .execute(&self.write)
                .await?;
        }
        Ok(Some(auth))
    }
}
