//! The admin console: server-rendered pages over the admin service layer ([`crate::admin`]),
//! so every rule the API enforces holds here too. Who is signed in comes from the browser
//! session: a person signed in with the organisation's IdP (their console role is recomputed
//! from their IdP groups on every request, so a role change applies at once), or the one-time
//! owner link. Every state-changing form is a same-origin POST carrying the session's CSRF
//! token; pages hide the controls a role may not use, and the service layer refuses them
//! anyway.
//!
//! - `session.rs`: the principal of a browser session, sign-in with the owner link;
//! - `pages.rs`: the pages that only read;
//! - `forms.rs`: the forms that change something.

mod forms;
mod pages;
pub mod session;

use axum::routing::{get, post};
use axum::Router;

use super::WebState;

/// The console's routes (served with the web pages' session, CSP and same-origin layers).
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/console", get(pages::overview))
        .route("/console/login", get(session::login))
        .route("/console/members", get(pages::members))
        .route("/console/members/{id}", get(pages::member))
        .route("/console/me", get(pages::me))
        .route("/console/policies", get(pages::policies))
        .route(
            "/console/policies/{target}",
            get(pages::policy).post(forms::policy),
        )
        .route("/console/devices", get(pages::devices))
        .route("/console/devices/{id}/revoke", post(forms::revoke_device))
        .route("/console/audit", get(pages::audit))
        .route("/console/audit/export", get(pages::audit_export))
        .route("/console/identity", get(pages::identity))
        .route("/console/identity/scim-tokens", post(forms::create_scim))
        .route(
            "/console/identity/scim-tokens/{id}/revoke",
            post(forms::revoke_scim),
        )
        .route(
            "/console/identity/api-tokens",
            post(forms::create_api_token),
        )
        .route(
            "/console/identity/api-tokens/{id}/revoke",
            post(forms::revoke_api_token),
        )
        .route(
            "/console/identity/enroll-tokens",
            post(forms::create_enroll_token),
        )
        .route(
            "/console/identity/enroll-tokens/{id}/revoke",
            post(forms::revoke_enroll_token),
        )
        .route("/console/identity/sign-in", post(forms::sign_in))
        .route("/console/identity/invites", post(forms::create_invite))
        .route(
            "/console/identity/invites/{id}/revoke",
            post(forms::revoke_invite),
        )
        .route(
            "/console/settings",
            get(pages::settings).post(forms::settings),
        )
}
