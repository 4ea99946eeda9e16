//! How devices get enrolled, as admins manage it: the fleet enrollment tokens MDM installs with,
//! and per-person invitations (activation codes). Each secret is shown once, in the answer to
//! its creation.

use serde::Serialize;

use super::{time, AdminError, AdminResult, Capability, Principal};
use crate::domain::{now_micros, EnrollToken, Invite};
use crate::store::{Store, StoreError};

/// The longest life of an enrollment token or an invitation.
const MAX_DAYS: i64 = 365;

/// An enrollment token as listed (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnrollTokenView {
    pub id: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// An invitation as listed (never its code).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InviteView {
    pub id: String,
    pub user_name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A new enrollment token or invitation: the secret is in this answer and nowhere else.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewEnrollmentSecret {
    pub id: String,
    pub prefix: String,
    pub expires_at: Option<String>,
    /// The token or activation code. Shown once.
    pub secret: String,
}

fn token_view(t: &EnrollToken) -> EnrollTokenView {
    EnrollTokenView {
        id: t.id.clone(),
        prefix: t.prefix.clone(),
        created_at: time(t.created_at),
        expires_at: t.expires_at.map(time),
        last_used_at: t.last_used_at.map(time),
        revoked_at: t.revoked_at.map(time),
    }
}

fn invite_view(i: &Invite) -> InviteView {
    InviteView {
        id: i.id.clone(),
        user_name: i.user_name.clone(),
        prefix: i.prefix.clone(),
        created_at: time(i.created_at),
        expires_at: time(i.expires_at),
        used_at: i.used_at.map(time),
        revoked_at: i.revoked_at.map(time),
    }
}

fn expiry(field: &str, days: Option<i64>, default: i64) -> AdminResult<i64> {
    let days = days.unwrap_or(default);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(AdminError::invalid(
            field,
            format!("between 1 and {MAX_DAYS} days"),
        ));
    }
    Ok(now_micros() + days * 86_400 * 1_000_000)
}

fn not_found(what: &'static str) -> impl Fn(StoreError) -> AdminError {
    move |e| match e {
        StoreError::NotFound => AdminError::NotFound(what),
        other => other.into(),
    }
}

/// The organisation's enrollment tokens.
pub async fn list_tokens(store: &Store, who: &Principal) -> AdminResult<Vec<EnrollTokenView>> {
    who.require(Capability::View)?;
    Ok(store
        .list_enroll_tokens(&who.org_id)
        .await?
        .iter()
        .map(token_view)
        .collect())
}

/// Mints an enrollment token valid `days` (default 30).
pub async fn create_token(
    store: &Store,
    who: &Principal,
    days: Option<i64>,
) -> AdminResult<NewEnrollmentSecret> {
    who.require(Capability::ManageCredentials)?;
    let expires = expiry("expires_in_days", days, 30)?;
    let (token, secret) = store
        .create_enroll_token(&who.org_id, Some(expires), &who.actor)
        .await?;
    Ok(NewEnrollmentSecret {
        id: token.id,
        prefix: token.prefix,
        expires_at: token.expires_at.map(time),
        secret,
    })
}

/// Revokes an enrollment token (by id): devices enrolled with it stay enrolled.
pub async fn revoke_token(
    store: &Store,
    who: &Principal,
    id: &str,
) -> AdminResult<EnrollTokenView> {
    who.require(Capability::ManageCredentials)?;
    if !store
        .list_enroll_tokens(&who.org_id)
        .await?
        .iter()
        .any(|t| t.id == id)
    {
        return Err(AdminError::NotFound("enrollment token"));
    }
    let t = store
        .revoke_enroll_token(&who.org_id, id, &who.actor)
        .await
        .map_err(not_found("enrollment token"))?;
    Ok(token_view(&t))
}

/// The organisation's invitations.
pub async fn list_invites(store: &Store, who: &Principal) -> AdminResult<Vec<InviteView>> {
    who.require(Capability::View)?;
    Ok(store
        .list_invites(&who.org_id)
        .await?
        .iter()
        .map(invite_view)
        .collect())
}

/// Invites an active person to enroll one device with an activation code valid `days`
/// (default 7).
pub async fn create_invite(
    store: &Store,
    who: &Principal,
    user_name: &str,
    days: Option<i64>,
) -> AdminResult<NewEnrollmentSecret> {
    who.require(Capability::ManageCredentials)?;
    let expires = expiry("expires_in_days", days, 7)?;
    let user = store
        .user_by_user_name(&who.org_id, user_name.trim())
        .await?
        .ok_or_else(|| AdminError::invalid("user", "no such person"))?;
    if !user.active {
        return Err(AdminError::invalid("user", "this person is deprovisioned"));
    }
    let (invite, code) = store
        .create_invite(&who.org_id, &user.id, expires, &who.actor)
        .await?;
    Ok(NewEnrollmentSecret {
        id: invite.id,
        prefix: invite.prefix,
        expires_at: Some(time(invite.expires_at)),
        secret: code,
    })
}

/// Revokes an invitation (by id).
pub async fn revoke_invite(store: &Store, who: &Principal, id: &str) -> AdminResult<InviteView> {
    who.require(Capability::ManageCredentials)?;
    if !store
        .list_invites(&who.org_id)
        .await?
        .iter()
        .any(|i| i.id == id)
    {
        return Err(AdminError::NotFound("invitation"));
    }
    let i = store
        .revoke_invite(&who.org_id, id, &who.actor)
        .await
        .map_err(not_found("invitation"))?;
    Ok(invite_view(&i))
}
