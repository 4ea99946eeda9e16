//! The SCIM 2.0 edge (RFC 7643/7644): the only layer that knows SCIM JSON. It authenticates
//! the IdP's bearer token, scopes every request to the token's organisation, and turns SCIM
//! requests into store calls.

pub mod auth;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod groups;
pub mod list;
pub mod patch;
pub mod render;
pub mod request;
pub mod resource;
pub mod schema;
pub mod users;

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use serde_json::Value;

use crate::domain::Actor;
use crate::store::Store;
use error::{ScimError, SCIM_CONTENT_TYPE};

/// The mount point of the SCIM API.
pub const SCIM_PREFIX: &str = "/scim/v2";

/// Settings of the SCIM edge.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// The most resources one list response carries (`filter.maxResults`); larger `count`s are capped.
    pub max_results: i64,
    /// The largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Sustained requests per second per credential (0 disables rate limiting).
    pub rate_per_second: u32,
    /// Requests a credential may send in a burst above the sustained rate.
    pub rate_burst: u32,
    /// The externally visible base URL (`https://scim.example.com/scim/v2`), if the Host header
    /// must not be trusted to build `meta.location`.
    pub public_base_url: Option<String>,
    /// Whether this server terminates TLS itself (for the scheme of `meta.location`).
    pub tls: bool,
}

impl Default for ScimSettings {
    fn default() -> Self {
        ScimSettings {
            max_results: 1000,
            max_body_bytes: 1024 * 1024,
            rate_per_second: 200,
            rate_burst: 400,
            public_base_url: None,
            tls: false,
        }
    }
}

/// Shared state of the SCIM handlers.
#[derive(Clone)]
pub struct ScimState {
    pub store: Store,
    pub settings: Arc<ScimSettings>,
    pub limiter: Option<Arc<auth::CredentialLimiter>>,
}

impl ScimState {
    pub fn new(store: Store, settings: ScimSettings) -> ScimState {
        let limiter = auth::CredentialLimiter::new(settings.rate_per_second, settings.rate_burst)
            .map(Arc::new);
        ScimState {
            store,
            settings: Arc::new(settings),
            limiter,
        }
    }
}

/// Who is calling: the organisation its token belongs to, and the base URL to render links with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: String,
    pub actor: Actor,
    pub base_url: String,
}

/// The SCIM router, to be nested at [`SCIM_PREFIX`]. Every route, known or not, sits behind
/// authentication, so no path spelling reaches a handler unauthenticated.
pub fn router(state: ScimState) -> Router {
    Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", post(users::search))
        .route(
            "/Users/{id}",
            get(users::fetch)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::fetch)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/.search", post(discovery::root_search))
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{name}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/Me", axum::routing::any(discovery::me))
        .route("/Bulk", axum::routing::any(discovery::bulk))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method not allowed on this SCIM endpoint",
    )
}

/// A SCIM JSON response with the right content type, and an ETag when the resource has a version.
pub fn scim_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if let Some(version) = body.pointer("/meta/version").and_then(Value::as_str) {
        if let Ok(v) = HeaderValue::from_str(version) {
            headers.insert(header::ETAG, v);
        }
    }
    response
}

/// The `If-Match` header, if any.
pub fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `If-None-Match` header, if any.
pub fn if_none_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Parses a raw query string into decoded pairs (400 on malformed encoding).
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ScimError> {
    match raw {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map_err(|_| ScimError::invalid_syntax("the query string is malformed")),
    }
}

/// Runs CPU-bound request work (JSON parsing, PATCH application, canonicalisation, in-memory
/// filtering of large lists) on tokio's blocking pool: a 1 MiB request must never hold an async
/// worker, or every other request, `/healthz` included, waits behind it. A panic in `work`
/// becomes a 500, never a dropped connection.
pub async fn off_runtime<T, F>(work: F) -> Result<T, ScimError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "request work failed on the blocking pool");
        ScimError::internal()
    })
}

/// How many times a write retries after losing an optimistic-concurrency race.
pub const WRITE_RETRIES: usize = 32;

/// Waits a little before retrying a write that lost a race, with jitter so that the racers
/// spread out instead of colliding again.
pub async fn retry_pause(attempt: usize) {
    use rand::Rng;
    let cap_ms = 2u64 << attempt.min(5);
    let ms = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}
