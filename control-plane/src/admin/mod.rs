//! The admin service layer: everything an IT or security admin does, as one set of functions
//! that both the console (`web/console/`) and the REST API (`api/`) call. Each takes the acting
//! [`Principal`], checks its [`Capability`] first, and works through the store, so no rule is
//! enforced in only one of the two; both edges map [`AdminError`] to their responses in one
//! place each.
//!
//! - [`access`]: roles, capabilities and the principal;
//! - [`people`]: members (search, detail with the explained effective policy) and "me";
//! - [`policies`]: org defaults and group policies, with the preview of a change;
//! - [`devices`]: the inventory and revoking one device;
//! - [`audit`]: filtered pages of the trail and its export;
//! - [`credentials`]: SCIM credentials and admin API tokens;
//! - [`enrollment`]: fleet enrollment tokens and per-person invitations;
//! - [`settings`]: the organisation's settings.

pub mod access;
pub mod audit;
pub mod credentials;
pub mod devices;
pub mod enrollment;
pub mod people;
pub mod policies;
pub mod settings;

pub use access::{AdminRole, Capability, Principal};

use base64::Engine as _;
use serde::Serialize;

use crate::store::StoreError;

/// Why an admin request failed. The message of each kind is safe to show to the client;
/// internal detail stays in [`AdminError::Internal`] and goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not signed in, or the token is unknown or revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// The role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed; `field` names what is wrong when one thing is.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
        /// One entry per problem, for forms that show each beside its field.
        details: Vec<FieldError>,
    },
    #[error("{0}")]
    Conflict(String),
    /// The control plane cannot do it as configured (no secrets key, ...).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// One problem with one field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field (a policy key such as `permissions.deny`, or a request field).
    pub field: Option<String>,
    pub message: String,
}

impl AdminError {
    /// A malformed request about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> AdminError {
        let message = message.into();
        AdminError::Invalid {
            field: Some(field.to_owned()),
            details: vec![FieldError {
                field: Some(field.to_owned()),
                message: message.clone(),
            }],
            message,
        }
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Unauthenticated => "unauthenticated",
            AdminError::Forbidden(_) => "forbidden",
            AdminError::NotFound(_) => "not_found",
            AdminError::Invalid { .. } => "invalid",
            AdminError::Conflict(_) => "conflict",
            AdminError::Unavailable(_) => "unavailable",
            AdminError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        match e {
            StoreError::NotFound => AdminError::NotFound("resource"),
            StoreError::Conflict(m) | StoreError::Ambiguous(m) => AdminError::Conflict(m),
            StoreError::VersionConflict => {
                AdminError::Conflict("changed meanwhile; read it again and retry".to_owned())
            }
            StoreError::InvalidReference(m) => AdminError::Invalid {
                field: None,
                details: vec![FieldError {
                    field: None,
                    message: m.clone(),
                }],
                message: m,
            },
            other => AdminError::Internal(other.into()),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// The largest page a list returns.
pub const MAX_PAGE: usize = 200;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

/// The page size to use for `limit`.
pub fn page_size(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// One page of a list, with the cursor of the next page when there is one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page (an empty `cursor` is the first page); absent on the
    /// last page.
    pub next_cursor: Option<String>,
}

/// An opaque cursor: base64url of its parts joined by a newline.
pub fn encode_cursor(parts: &[&str]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.join("\n"))
}

/// The parts of a cursor made by [`encode_cursor`] (`n` of them), or a clear error.
pub fn decode_cursor(cursor: &str, n: usize) -> AdminResult<Vec<String>> {
    let bad = || AdminError::invalid("cursor", "not a cursor this API returned");
    if cursor.len() > 1024 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if parts.len() != n {
        return Err(bad());
    }
    Ok(parts)
}

/// Microseconds since the epoch as RFC 3339 (what every view shows).
pub fn time(micros: crate::domain::Micros) -> String {
    crate::domain::to_rfc3339(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = encode_cursor(&["123", "abc"]);
        assert_eq!(decode_cursor(&c, 2).unwrap(), vec!["123", "abc"]);
        assert!(decode_cursor(&c, 1).is_err());
        assert!(decode_cursor("!!!", 2).is_err());
        assert!(decode_cursor(&"A".repeat(2000), 2).is_err());
    }
}
