//! Who is calling: an admin API token in `Authorization: Bearer`, looked up by its hash on each
//! request (a revocation applies to the next request), with the client's address for the
//! audit trail.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use super::ApiState;
use crate::admin::{AdminError, AdminRole, Principal};
use crate::domain::Actor;

/// The authenticated caller of an API request.
pub struct Caller(pub Principal);

/// The client's address as the audit trail records it.
pub fn source_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(secret) = bearer else {
            return Err(ApiError(AdminError::Unauthenticated));
        };
        let token = state
            .store
            .authenticate_api_token(secret)
            .await
            .map_err(|e| ApiError(e.into()))?
            .ok_or(ApiError(AdminError::Unauthenticated))?;
        let role = AdminRole::for_token(&token.role).ok_or_else(|| {
            ApiError(AdminError::Internal(anyhow::anyhow!(
                "API token {} has an unknown role {:?}",
                token.id,
                token.role
            )))
        })?;
        Ok(Caller(Principal {
            org_id: token.org_id,
            role,
            actor: Actor::ApiToken {
                id: token.id,
                label: token.label,
                source: source_of(parts),
            },
            user_id: None,
        }))
    }
}
