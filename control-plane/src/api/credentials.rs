//! `/api/v1/scim-tokens` and `/api/v1/api-tokens`: list, create (the secret is in the answer
//! once), revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Body;
use super::ApiState;
use crate::admin::credentials::{self as svc, CredentialView, NewCredential};

/// A new SCIM credential.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScim {
    /// What it is for (`Okta`), 1-200 characters.
    label: String,
}

/// A new admin API token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    /// What it is for (`terraform`), 1-200 characters.
    label: String,
    /// `admin`, `security` or `read-only`.
    role: String,
}

/// SCIM credentials (never their secrets).
#[utoipa::path(get, path = "/api/v1/scim-tokens", tag = "credentials",
    responses((status = 200, body = Vec<CredentialView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_scim(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<Vec<CredentialView>>, ApiError> {
    Ok(Json(svc::list_scim(&s.store, &who).await?))
}

/// Create a SCIM credential; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/scim-tokens", tag = "credentials", request_body = NewScim,
    responses((status = 201, body = NewCredential), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_scim(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Body(b): Body<NewScim>,
) -> Result<(StatusCode, Json<NewCredential>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_scim(&s.store, &who, &b.label).await?),
    ))
}

/// Revoke a SCIM credential.
#[utoipa::path(delete, path = "/api/v1/scim-tokens/{id}", tag = "credentials",
    params(("id" = String, Path, description = "The credential's id")),
    responses((status = 200, body = CredentialView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_scim(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<CredentialView>, ApiError> {
    Ok(Json(svc::revoke_scim(&s.store, &who, &id).await?))
}

/// Admin API tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "credentials",
    responses((status = 200, body = Vec<CredentialView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_api_tokens(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<Vec<CredentialView>>, ApiError> {
    Ok(Json(svc::list_api_tokens(&s.store, &who).await?))
}

/// Create an admin API token; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "credentials", request_body = NewApiToken,
    responses((status = 201, body = NewCredential), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_api_token(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Body(b): Body<NewApiToken>,
) -> Result<(StatusCode, Json<NewCredential>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_api_token(&s.store, &who, &b.label, &b.role).await?),
    ))
}

/// Revoke an admin API token.
#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "credentials",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 200, body = CredentialView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_token(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<CredentialView>, ApiError> {
    Ok(Json(svc::revoke_api_token(&s.store, &who, &id).await?))
}
