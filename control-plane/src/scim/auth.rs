//! Bearer-token authentication and per-credential rate limiting for every SCIM request.

use std::num::NonZeroU32;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::error::ScimError;
use super::{Caller, ScimState, SCIM_PREFIX};
use crate::domain::Actor;

/// A token-bucket rate limiter keyed by credential id.
pub struct CredentialLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl CredentialLimiter {
    /// `None` when `per_second` is 0 (rate limiting disabled).
    pub fn new(per_second: u32, burst: u32) -> Option<CredentialLimiter> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        Some(CredentialLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        })
    }

    /// `Err(seconds to wait)` when the credential is over its rate.
    pub fn check(&self, token_id: &str) -> Result<(), u64> {
        match self.limiter.check_key(&token_id.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
        }
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn base_url(state: &ScimState, req: &Request) -> String {
    if let Some(u) = &state.settings.public_base_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or_else(|| "localhost".to_string());
    let scheme = if state.settings.tls { "https" } else { "http" };
    format!("{scheme}://{host}{SCIM_PREFIX}")
}

/// Authenticates the request, applies the credential's rate limit, and attaches the [`Caller`].
pub async fn authenticate(
    State(state): State<ScimState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(&req) else {
        return ScimError::unauthorized("missing bearer token").into_response();
    };
    let auth = match state.store.authenticate_scim_token(token).await {
        Ok(Some(auth)) => auth,
        Ok(None) => {
            return ScimError::unauthorized("invalid or revoked bearer token").into_response()
        }
        Err(e) => return ScimError::from(e).into_response(),
    };
    if let Some(limiter) = &state.limiter {
        if let Err(wait) = limiter.check(&auth.token_id) {
            return ScimError::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "rate limit exceeded for this credential; retry later",
            )
            .with_retry_after(wait.max(1))
            .into_response();
        }
    }
    let caller = Caller {
        org_id: auth.org_id,
        actor: Actor::ScimToken {
            id: auth.token_id,
            label: auth.label,
        },
        base_url: base_url(&state, &req),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}
