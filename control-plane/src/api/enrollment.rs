//! `/api/v1/enroll-tokens` and `/api/v1/invites`: list, create (the secret is in the answer
//! once), revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Body;
use super::ApiState;
use crate::admin::enrollment::{self as svc, EnrollTokenView, InviteView, NewEnrollmentSecret};

/// A new enrollment token.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollToken {
    /// Days it works (1-365, default 30).
    #[serde(default)]
    expires_in_days: Option<i64>,
}

/// A new invitation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    /// The person's userName.
    user: String,
    /// Days it works (1-365, default 7).
    #[serde(default)]
    expires_in_days: Option<i64>,
}

/// Fleet enrollment tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/enroll-tokens", tag = "credentials",
    responses((status = 200, body = Vec<EnrollTokenView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<Vec<EnrollTokenView>>, ApiError> {
    Ok(Json(svc::list_tokens(&s.store, &who).await?))
}

/// Create a fleet enrollment token (for MDM); the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/enroll-tokens", tag = "credentials", request_body = NewEnrollToken,
    responses((status = 201, body = NewEnrollmentSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Body(b): Body<NewEnrollToken>,
) -> Result<(StatusCode, Json<NewEnrollmentSecret>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_token(&s.store, &who, b.expires_in_days).await?),
    ))
}

/// Revoke a fleet enrollment token (enrolled devices stay enrolled).
#[utoipa::path(delete, path = "/api/v1/enroll-tokens/{id}", tag = "credentials",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 200, body = EnrollTokenView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<EnrollTokenView>, ApiError> {
    Ok(Json(svc::revoke_token(&s.store, &who, &id).await?))
}

/// Invitations (never their codes).
#[utoipa::path(get, path = "/api/v1/invites", tag = "credentials",
    responses((status = 200, body = Vec<InviteView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_invites(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<Vec<InviteView>>, ApiError> {
    Ok(Json(svc::list_invites(&s.store, &who).await?))
}

/// Invite a person to enroll one device; the activation code is in this answer only.
#[utoipa::path(post, path = "/api/v1/invites", tag = "credentials", request_body = NewInvite,
    responses((status = 201, body = NewEnrollmentSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_invite(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Body(b): Body<NewInvite>,
) -> Result<(StatusCode, Json<NewEnrollmentSecret>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_invite(&s.store, &who, &b.user, b.expires_in_days).await?),
    ))
}

/// Revoke an invitation.
#[utoipa::path(delete, path = "/api/v1/invites/{id}", tag = "credentials",
    params(("id" = String, Path, description = "The invitation's id")),
    responses((status = 200, body = InviteView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_invite(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<InviteView>, ApiError> {
    Ok(Json(svc::revoke_invite(&s.store, &who, &id).await?))
}
