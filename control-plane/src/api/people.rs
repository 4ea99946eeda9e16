//! `/api/v1/me` and `/api/v1/members`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Params;
use super::ApiState;
use crate::admin::people::{self as svc, MemberDetail, MemberSummary};
use crate::admin::Page;

/// A list's paging and search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only people whose userName starts with this (any case).
    #[serde(default)]
    q: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    /// Items per page (1-200, default 50).
    #[serde(default)]
    limit: Option<usize>,
}

/// The caller's own page (a person signed in to the console).
#[utoipa::path(get, path = "/api/v1/me", tag = "members",
    responses((status = 200, body = MemberDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "The caller is an API token, not a person")))]
pub async fn me(
    State(s): State<ApiState>,
    Caller(who): Caller,
) -> Result<Json<MemberDetail>, ApiError> {
    Ok(Json(svc::me(&s.store, &who).await?))
}

/// Members, by userName.
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(ListParams),
    responses((status = 200, body = Page<MemberSummary>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_members(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Params(p): Params<ListParams>,
) -> Result<Json<Page<MemberSummary>>, ApiError> {
    Ok(Json(
        svc::list_members(
            &s.store,
            &who,
            p.q.as_deref().unwrap_or(""),
            p.cursor.as_deref(),
            p.limit,
        )
        .await?,
    ))
}

/// One member: groups, devices, effective policy and where each rule comes from.
#[utoipa::path(get, path = "/api/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "The member's id")),
    responses((status = 200, body = MemberDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn member(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<MemberDetail>, ApiError> {
    Ok(Json(svc::member(&s.store, &who, &id).await?))
}
