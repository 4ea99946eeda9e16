//! Credentials an admin manages: SCIM credentials for the IdP and admin API tokens. Each secret
//! is shown once, in the answer to its creation, and stored only as a hash.

use serde::Serialize;

use super::{time, AdminError, AdminResult, AdminRole, Capability, Principal};
use crate::store::{ApiToken, Store};

/// A credential as listed (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CredentialView {
    pub id: String,
    pub label: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// For API tokens: the role it acts with.
    pub role: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A new credential: its secret is in this answer and nowhere else.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewCredential {
    pub credential: CredentialView,
    /// The secret. Shown once: store it now.
    pub secret: String,
}

fn api_view(t: &ApiToken) -> CredentialView {
    CredentialView {
        id: t.id.clone(),
        label: t.label.clone(),
        prefix: t.prefix.clone(),
        role: Some(t.role.clone()),
        created_at: time(t.created_at),
        last_used_at: t.last_used_at.map(time),
        revoked_at: t.revoked_at.map(time),
    }
}

fn scim_view(t: &crate::domain::ScimToken) -> CredentialView {
    CredentialView {
        id: t.id.clone(),
        label: t.label.clone(),
        prefix: t.prefix.clone(),
        role: None,
        created_at: time(t.created_at),
        last_used_at: t.last_used_at.map(time),
        revoked_at: t.revoked_at.map(time),
    }
}

/// The organisation's SCIM credentials.
pub async fn list_scim(store: &Store, who: &Principal) -> AdminResult<Vec<CredentialView>> {
    who.require(Capability::View)?;
    Ok(store
        .list_scim_tokens(&who.org_id)
        .await?
        .iter()
        .map(scim_view)
        .collect())
}

/// Creates a SCIM credential.
pub async fn create_scim(
    store: &Store,
    who: &Principal,
    label: &str,
) -> AdminResult<NewCredential> {
    who.require(Capability::ManageCredentials)?;
    let new = store
        .create_scim_token(&who.org_id, label, &who.actor)
        .await?;
    Ok(NewCredential {
        credential: scim_view(&new.token),
        secret: new.secret,
    })
}

/// Revokes a SCIM credential (by id).
pub async fn revoke_scim(store: &Store, who: &Principal, id: &str) -> AdminResult<CredentialView> {
    who.require(Capability::ManageCredentials)?;
    if !store
        .list_scim_tokens(&who.org_id)
        .await?
        .iter()
        .any(|t| t.id == id)
    {
        return Err(AdminError::NotFound("SCIM credential"));
    }
    Ok(scim_view(
        &store.revoke_scim_token(&who.org_id, id, &who.actor).await?,
    ))
}

/// The organisation's admin API tokens.
pub async fn list_api_tokens(store: &Store, who: &Principal) -> AdminResult<Vec<CredentialView>> {
    who.require(Capability::View)?;
    Ok(store
        .list_api_tokens(&who.org_id)
        .await?
        .iter()
        .map(api_view)
        .collect())
}

/// Creates an admin API token acting with `role` (`admin`, `security` or `read-only`).
pub async fn create_api_token(
    store: &Store,
    who: &Principal,
    label: &str,
    role: &str,
) -> AdminResult<NewCredential> {
    who.require(Capability::ManageCredentials)?;
    let role = AdminRole::for_token(role)
        .ok_or_else(|| AdminError::invalid("role", "admin, security or read-only"))?;
    let new = store
        .create_api_token(&who.org_id, label, role.as_str(), &who.actor)
        .await?;
    Ok(NewCredential {
        credential: api_view(&new.token),
        secret: new.secret,
    })
}

/// Revokes an admin API token (by id).
pub async fn revoke_api_token(
    store: &Store,
    who: &Principal,
    id: &str,
) -> AdminResult<CredentialView> {
    who.require(Capability::ManageCredentials)?;
    if !store
        .list_api_tokens(&who.org_id)
        .await?
        .iter()
        .any(|t| t.id == id)
    {
        return Err(AdminError::NotFound("API token"));
    }
    Ok(api_view(
        &store.revoke_api_token(&who.org_id, id, &who.actor).await?,
    ))
}
