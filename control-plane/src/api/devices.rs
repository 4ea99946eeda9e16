//! `/api/v1/devices`: the inventory, one device, and revoking one.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::error::{rejection, ApiError, ErrorBody};
use super::extract::Params;
use super::ApiState;
use crate::admin::devices as svc;
use crate::admin::people::DeviceView;
use crate::admin::Page;

/// Paging (every cursor-paginated list without a search).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub(super) cursor: Option<String>,
    /// Items per page (1-200, default 50).
    #[serde(default)]
    pub(super) limit: Option<usize>,
}

/// Why a device is revoked.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Shown in the inventory and the audit trail (default "revoked by an admin").
    #[serde(default)]
    reason: Option<String>,
}

/// Devices, newest enrollment first.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(PageParams),
    responses((status = 200, body = Page<DeviceView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_devices(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Params(p): Params<PageParams>,
) -> Result<Json<Page<DeviceView>>, ApiError> {
    Ok(Json(
        svc::list_devices(&s.store, &who, p.cursor.as_deref(), p.limit).await?,
    ))
}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "The device's id")),
    responses((status = 200, body = DeviceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_device(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    Ok(Json(svc::device(&s.store, &who, &id).await?))
}

/// Revoke one device: its credential stops working and its agent wipes the key and Claude
/// Code's login.
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "devices",
    params(("id" = String, Path, description = "The device's id")),
    request_body(content = Option<RevokeRequest>),
    responses((status = 200, body = DeviceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn revoke_device(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DeviceView>, ApiError> {
    // The body is optional: empty means the default reason.
    let request: RevokeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| rejection(format!("invalid body: {e}")))?
    };
    let reason = request.reason;
    Ok(Json(
        svc::revoke_device(&s.store, &who, &id, reason.as_deref()).await?,
    ))
}
