//! `/api/v1/policies/defaults` and `/api/v1/groups/{id}/policy`: read, preview (`dry_run`) and
//! save.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::auth::Caller;
use super::devices::PageParams;
use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Params};
use super::ApiState;
use crate::admin::policies::{
    self as svc, GroupSummary, PolicyTarget, PolicyVersion, PolicyView, Preview,
};
use crate::admin::Page;

/// Whether to only preview.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRun {
    /// Preview the change without saving it.
    #[serde(default)]
    dry_run: Option<bool>,
}

/// Groups, with their member counts and whether each overrides the defaults.
#[utoipa::path(get, path = "/api/v1/groups", tag = "policies", params(PageParams),
    responses((status = 200, body = Page<GroupSummary>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_groups(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Params(p): Params<PageParams>,
) -> Result<Json<Page<GroupSummary>>, ApiError> {
    Ok(Json(
        svc::list_groups(&s.store, &who, p.cursor.as_deref(), p.limit).await?,
    ))
}

/// The org defaults.
#[utoipa::path(get, path = "/api/v1/policies/defaults", tag = "policies",
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_defaults(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(svc::defaults(&s.store, &who).await?))
}

/// Replace the org defaults (a version-2 policy document); `dry_run` previews.
#[utoipa::path(put, path = "/api/v1/policies/defaults", tag = "policies", params(DryRun),
    request_body(content = Object, description = "A policy document"),
    responses((status = 200, body = Preview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_defaults(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Params(d): Params<DryRun>,
    Body(doc): Body<Value>,
) -> Result<Json<Preview>, ApiError> {
    Ok(Json(
        svc::set_policy(
            &s.store,
            &who,
            &PolicyTarget::Defaults,
            Some(&doc),
            d.dry_run.unwrap_or(false),
        )
        .await?,
    ))
}

/// A group's policy override.
#[utoipa::path(get, path = "/api/v1/groups/{id}/policy", tag = "policies",
    params(("id" = String, Path, description = "The group's id")),
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_group_policy(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(svc::group_policy(&s.store, &who, &id).await?))
}

/// Replace a group's override; `dry_run` previews.
#[utoipa::path(put, path = "/api/v1/groups/{id}/policy", tag = "policies",
    params(("id" = String, Path, description = "The group's id"), DryRun),
    request_body(content = Object, description = "A policy document (no org-only keys)"),
    responses((status = 200, body = Preview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_group_policy(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Params(d): Params<DryRun>,
    Body(doc): Body<Value>,
) -> Result<Json<Preview>, ApiError> {
    Ok(Json(
        svc::set_policy(
            &s.store,
            &who,
            &PolicyTarget::Group(id),
            Some(&doc),
            d.dry_run.unwrap_or(false),
        )
        .await?,
    ))
}

/// Remove a group's override; `dry_run` previews.
#[utoipa::path(delete, path = "/api/v1/groups/{id}/policy", tag = "policies",
    params(("id" = String, Path, description = "The group's id"), DryRun),
    responses((status = 200, body = Preview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_group_policy(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Params(d): Params<DryRun>,
) -> Result<Json<Preview>, ApiError> {
    Ok(Json(
        svc::set_policy(
            &s.store,
            &who,
            &PolicyTarget::Group(id),
            None,
            d.dry_run.unwrap_or(false),
        )
        .await?,
    ))
}

/// The org defaults' saved versions, newest first (restore one by saving it).
#[utoipa::path(get, path = "/api/v1/policies/defaults/history", tag = "policies",
    responses((status = 200, body = Vec<PolicyVersion>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn defaults_history(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<Vec<PolicyVersion>>, ApiError> {
    Ok(Json(
        svc::history(&s.store, &who, &PolicyTarget::Defaults, 50).await?,
    ))
}

/// A group policy's saved versions, newest first.
#[utoipa::path(get, path = "/api/v1/groups/{id}/policy/history", tag = "policies",
    params(("id" = String, Path, description = "The group's id")),
    responses((status = 200, body = Vec<PolicyVersion>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn group_history(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<PolicyVersion>>, ApiError> {
    Ok(Json(
        svc::history(&s.store, &who, &PolicyTarget::Group(id), 50).await?,
    ))
}
