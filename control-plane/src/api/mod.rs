//! The admin REST API under `/api/v1`: every handler authenticates the caller (an admin API
//! token, `Authorization: Bearer pal_admin_…`), calls the one service function of
//! [`crate::admin`] that does the work, and answers JSON. The OpenAPI 3.1 document is generated
//! from these handlers and types and served at `/api/v1/openapi.json`. Errors are mapped in
//! `error.rs` only.
//!
//! - `auth.rs`: the caller, from the bearer token, and the source address;
//! - `error.rs`: [`AdminError`](crate::admin::AdminError) → status and JSON body; `extract.rs`:
//!   bodies and query strings whose failures answer in that shape;
//! - one file per resource: `people.rs`, `policies.rs`, `devices.rs`, `audit.rs`,
//!   `credentials.rs`, `enrollment.rs`, `settings.rs`.

pub(crate) mod audit;
pub mod auth;
mod credentials;
mod devices;
mod enrollment;
pub mod error;
mod extract;
mod people;
mod policies;
mod settings;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::crypto::SecretsKey;
use crate::store::Store;

/// What every API handler gets.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    /// Encrypts secrets admins set (the OIDC client secret); absent: such writes answer 503.
    pub secrets: Option<SecretsKey>,
}

/// Where the API lives.
pub const API_PREFIX: &str = "/api/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Palisade admin API",
        description = "Everything an admin does in the Palisade console, over HTTP. Authenticate with an admin API token (`palisade-control-plane api-token create`) as a bearer token; its role (admin, security, read-only) decides what it may do. Lists are cursor-paginated: pass `next_cursor` back as `cursor`.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "members", description = "People provisioned by the identity provider"),
        (name = "policies", description = "Org defaults and group policies"),
        (name = "devices", description = "Enrolled devices"),
        (name = "audit", description = "The audit trail"),
        (name = "credentials", description = "SCIM credentials and admin API tokens"),
        (name = "settings", description = "Organisation settings")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pal_admin_…")
                    .build(),
            ),
        );
    }
}

/// Every route, with what the OpenAPI document says of it.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(people::me))
        .routes(routes!(people::list_members))
        .routes(routes!(people::member))
        .routes(routes!(policies::list_groups))
        .routes(routes!(policies::defaults_history))
        .routes(routes!(policies::group_history))
        .routes(routes!(policies::get_defaults, policies::put_defaults))
        .routes(routes!(
            policies::get_group_policy,
            policies::put_group_policy,
            policies::delete_group_policy
        ))
        .routes(routes!(devices::list_devices))
        .routes(routes!(devices::get_device))
        .routes(routes!(devices::revoke_device))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::export_audit))
        .routes(routes!(credentials::list_scim, credentials::create_scim))
        .routes(routes!(credentials::revoke_scim))
        .routes(routes!(
            credentials::list_api_tokens,
            credentials::create_api_token
        ))
        .routes(routes!(credentials::revoke_api_token))
        .routes(routes!(enrollment::list_tokens, enrollment::create_token))
        .routes(routes!(enrollment::revoke_token))
        .routes(routes!(enrollment::list_invites, enrollment::create_invite))
        .routes(routes!(enrollment::revoke_invite))
        .routes(routes!(settings::get_settings, settings::patch_settings))
        .routes(routes!(settings::get_sign_in, settings::put_sign_in))
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The API router (paths already under [`API_PREFIX`]), with `/api/v1/openapi.json`.
pub fn router(store: Store, secrets: Option<SecretsKey>) -> Router {
    let (api, doc) = routes()
        .with_state(ApiState { store, secrets })
        .split_for_parts();
    let doc = std::sync::Arc::new(doc);
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
    .route(
        "/api/v1/{*rest}",
        axum::routing::any(|| async {
            error::ApiError(crate::admin::AdminError::NotFound("API route"))
        }),
    )
}
