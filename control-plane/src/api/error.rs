//! The one place admin errors become HTTP answers: a status and a JSON body
//! `{"error": {"code", "message", "field", "details"}}`. Internal detail is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::admin::{AdminError, FieldError};

/// An [`AdminError`] on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub AdminError);

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        ApiError(e)
    }
}

/// Every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `unauthenticated`, `forbidden`, `not_found`, `invalid`, `conflict`, `unavailable`,
    /// `internal`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
    /// Every problem found, each with its field.
    pub details: Vec<FieldError>,
}

/// The status of each kind of error.
pub fn status(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Unauthenticated => StatusCode::UNAUTHORIZED,
        AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        if let AdminError::Internal(inner) = &e {
            tracing::error!(error = %inner, "admin API request failed");
        }
        let (field, details) = match &e {
            AdminError::Invalid { field, details, .. } => (field.clone(), details.clone()),
            _ => (None, Vec::new()),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code().to_owned(),
                message: e.to_string(),
                field,
                details,
            },
        };
        let mut response = (status(&e), Json(body)).into_response();
        if matches!(e, AdminError::Unauthenticated) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"palisade-admin\""),
            );
        }
        response
    }
}

/// Request bodies and query strings that do not parse are client errors in the same shape.
pub fn rejection(message: String) -> ApiError {
    ApiError(AdminError::Invalid {
        field: None,
        details: vec![FieldError {
            field: None,
            message: message.clone(),
        }],
        message,
    })
}
