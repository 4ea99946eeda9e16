//! `/api/v1/settings`: the organisation's settings.

use axum::extract::State;
use axum::Json;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Body;
use super::ApiState;
use crate::admin::settings::{self as svc, SettingsChange, SettingsView, SignInChange, SignInView};

/// The settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses((status = 200, body = SettingsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_settings(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(svc::get(&s.store, &who).await?))
}

/// Change some settings (only the fields given).
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings", request_body = SettingsChange,
    responses((status = 200, body = SettingsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch_settings(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Body(change): Body<SettingsChange>,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(svc::update(&s.store, &who, &change).await?))
}

/// How people sign in to the console (absent until `oidc set`); never the client secret.
#[utoipa::path(get, path = "/api/v1/sign-in", tag = "settings",
    responses((status = 200, body = Option<SignInView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_sign_in(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<Option<SignInView>>, ApiError> {
    Ok(Json(svc::sign_in(&s.store, &who).await?))
}

/// Connect or change the organisation's IdP for sign-in. The client secret is stored
/// encrypted and never returned; leave it out to keep the stored one.
#[utoipa::path(put, path = "/api/v1/sign-in", tag = "settings", request_body = SignInChange,
    responses((status = 200, body = SignInView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn put_sign_in(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Body(change): Body<SignInChange>,
) -> Result<Json<SignInView>, ApiError> {
    Ok(Json(
        svc::set_sign_in(&s.store, s.secrets.as_ref(), &who, &change).await?,
    ))
}
