//! `/api/v1/audit`: filtered pages and the CSV / JSON Lines export.

use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Params;
use super::ApiState;
use crate::admin::audit::{self as svc, AuditEntry, AuditQuery, ExportFormat};
use crate::admin::Page;

/// Filters and paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// The actor exactly as shown (`person:alice@example.com`, `api-token:ci (…)`).
    #[serde(default)]
    actor: Option<String>,
    /// An action (`device.revoke`), or a prefix ending in `.` (`device.`).
    #[serde(default)]
    action: Option<String>,
    /// Events about this person (userName or id).
    #[serde(default)]
    person: Option<String>,
    /// From this time (RFC 3339).
    #[serde(default)]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[serde(default)]
    until: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    /// Items per page (1-200, default 50).
    #[serde(default)]
    limit: Option<usize>,
    /// Export format: `csv` or `jsonl` (export only).
    #[serde(default)]
    format: Option<String>,
}

impl AuditParams {
    fn query(&self) -> AuditQuery {
        AuditQuery {
            actor: self.actor.clone(),
            action: self.action.clone(),
            person: self.person.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

/// The trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = Page<AuditEntry>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_audit(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Params(p): Params<AuditParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    Ok(Json(
        svc::page(&s.store, &who, &p.query(), p.cursor.as_deref(), p.limit).await?,
    ))
}

/// The whole filtered trail as CSV (default) or JSON Lines, streamed.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditParams),
    responses((status = 200, content_type = "text/csv", body = String, description = "CSV, or JSON Lines with format=jsonl"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_audit(
    State(s): State<ApiState>,
    Caller(who): Caller,
    Params(p): Params<AuditParams>,
) -> Result<Response, ApiError> {
    let format = ExportFormat::parse(p.format.as_deref())?;
    let stream = svc::export(&s.store, &who, &p.query(), format).await?;
    Ok(export_download(format, stream))
}

/// An export as a download (the console's export answers the same).
pub(crate) fn export_download(
    format: ExportFormat,
    stream: impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send + 'static,
) -> Response {
    let (content_type, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "palisade-audit.csv"),
        ExportFormat::JsonLines => ("application/jsonl", "palisade-audit.jsonl"),
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        HttpBody::from_stream(stream),
    )
        .into_response()
}
