//! The control plane's own web pages, served on its HTTP port beside SCIM: sign-in with the
//! organisation's IdP (`signin/`), the device-enrollment pages (`device.rs`) and the admin
//! console (`console/`). Server-rendered
//! (askama), no scripts; every response carries a strict Content Security Policy, and every
//! state-changing request must be a same-origin POST carrying the session's CSRF token.

pub mod console;
pub mod device;
pub mod signin;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use rand::RngCore;
use tower_sessions::Session;

use crate::crypto::SecretsKey;
use crate::store::Store;

/// Shared by every page handler.
#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub secrets: Option<SecretsKey>,
    /// The public base URL (no trailing slash), as people and the IdP reach this server.
    pub public_url: String,
    /// `scheme://host[:port]` of [`WebState::public_url`], for the same-origin check.
    pub origin: String,
    pub http: openidconnect::reqwest::Client,
    pub providers: signin::oidc::ProviderCache,
    /// Sign-in and code attempts per source address (per /64 for IPv6).
    attempts: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Attempts checked, to forget idle addresses now and then.
    checked: Arc<std::sync::atomic::AtomicU64>,
}

impl WebState {
    pub fn new(
        store: Store,
        secrets: Option<SecretsKey>,
        public_url: &str,
    ) -> anyhow::Result<WebState> {
        let public_url = public_url.trim_end_matches('/').to_string();
        let origin = origin_of(&public_url)
            .ok_or_else(|| anyhow::anyhow!("--public-url {public_url:?} is not an http(s) URL"))?;
        let quota = Quota::per_minute(std::num::NonZeroU32::MIN.saturating_add(29))
            .allow_burst(std::num::NonZeroU32::MIN.saturating_add(9));
        Ok(WebState {
            store,
            secrets,
            public_url,
            origin,
            http: signin::oidc::http_client()?,
            providers: signin::oidc::ProviderCache::default(),
            attempts: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            checked: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// Whether this source may make another attempt (code entry, sign-in start): 10 at once,
    /// then 30 a minute.
    pub fn allow_attempt(&self, source: &SourceAddr) -> bool {
        let n = self
            .checked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 4096 == 4095 {
            // Addresses whose bucket is full again carry no state worth keeping.
            self.attempts.retain_recent();
        }
        match source.ip() {
            Some(ip) => self
                .attempts
                .check_key(&crate::grpc::limits::rate_key(ip))
                .is_ok(),
            None => true,
        }
    }

    /// Whether the public URL is HTTPS (then cookies are `Secure`).
    pub fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// The pages' routes, with the session layer and the security headers.
pub fn router(state: WebState) -> Router {
    let sessions = signin::sessions::layer(state.store.clone(), state.secure());
    Router::new()
        .route("/auth/login", get(signin::login))
        .route(signin::CALLBACK_PATH, get(signin::callback))
        .route("/auth/logout", post(signin::logout))
        .route(
            "/enroll/device",
            get(device::code_form).post(device::submit_code),
        )
        .route(
            "/enroll/device/confirm",
            get(device::confirm_page).post(device::decide),
        )
        .route(
            "/enroll/device/verify",
            get(device::verify_page).post(device::verify),
        )
        .route("/static/palisade.css", get(stylesheet))
        .merge(console::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            same_origin_posts,
        ))
        .layer(sessions)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/palisade.css"),
    )
        .into_response()
}

/// No inline script or style, no framing, no referrer to other sites (URLs carry codes; within
/// the site it is kept, so browsers send our `Origin` on our own forms), no caching.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Refuses a POST that a browser says came from another site (or that says nothing): the
/// `Origin` must be ours, or, without one, `Sec-Fetch-Site` must be `same-origin`.
async fn same_origin_posts(
    axum::extract::State(state): axum::extract::State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == axum::http::Method::POST
        && !is_same_origin(request.headers(), &state.origin)
    {
        return message_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form must be sent from Palisade's own page.",
        );
    }
    next.run(request).await
}

fn is_same_origin(headers: &HeaderMap, origin: &str) -> bool {
    // A privacy-minded browser may send `Origin: null`; then its Fetch Metadata decides.
    match headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| *o != "null")
    {
        Some(o) => o.eq_ignore_ascii_case(origin),
        None => headers
            .get("sec-fetch-site")
            .and_then(|s| s.to_str().ok())
            .is_some_and(|s| s == "same-origin"),
    }
}

/// The client's address, from the connection (`"unknown"` where it is not available).
#[derive(Debug, Clone)]
pub struct SourceAddr(pub String);

impl SourceAddr {
    fn ip(&self) -> Option<IpAddr> {
        self.0.parse().ok()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SourceAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".to_string()),
        ))
    }
}

/// Equal strings, compared without an early exit (CSRF tokens, OAuth state).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

const CSRF_KEY: &str = "csrf";

/// The session's CSRF token, minted on first use. This is OWASP's synchronizer-token pattern:
/// the token lives in the server-side `tower-sessions` record, so it is bound to the session
/// and dies with it (a double-submit cookie, as in `axum_csrf`, is not); the same-origin
/// layer checks `Origin`/`Sec-Fetch-Site` before any handler runs.
pub async fn csrf_token(session: &Session) -> Result<String, Response> {
    if let Ok(Some(t)) = session.get::<String>(CSRF_KEY).await {
        return Ok(t);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    session
        .insert(CSRF_KEY, &token)
        .await
        .map_err(internal_error)?;
    Ok(token)
}

/// Whether a form's token is this session's.
pub async fn csrf_ok(session: &Session, given: &str) -> bool {
    match session.get::<String>(CSRF_KEY).await {
        Ok(Some(t)) => constant_time_eq(&t, given),
        _ => false,
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    message: &'a str,
}

/// Renders a template as an HTML response.
pub fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page with a heading and one message.
pub fn message_page(status: StatusCode, heading: &str, message: &str) -> Response {
    html(status, &MessagePage { heading, message })
}

/// Logs the detail and shows a page that reveals none.
pub fn internal_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "a page failed");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Palisade could not complete this request. Try again in a minute.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://pal.example.com/x").as_deref(),
            Some("https://pal.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin_of("ftp://x"), None);
    }

    #[test]
    fn same_origin_rules() {
        let mut h = HeaderMap::new();
        assert!(!is_same_origin(&h, "http://a"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(is_same_origin(&h, "http://a"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil"));
        assert!(!is_same_origin(&h, "http://a"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://a"));
        assert!(is_same_origin(&h, "http://a"));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(
            is_same_origin(&h, "http://a"),
            "null origin, same-origin fetch metadata"
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!is_same_origin(&h, "http://a"));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
