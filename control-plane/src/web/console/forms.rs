//! The console's forms: each checks the session's CSRF token (the same-origin layer has
//! already refused cross-site posts), then calls the one service function that does the work —
//! the role check is there, as for the API.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use super::pages::{
    identity_page, identity_page_with, or_page, policy_page, signed_in, target_of, Frame,
    SettingsPage, Shown, SignInForm,
};
use super::session::{console, error_page};
use crate::admin::settings::{SettingsChange, SignInChange};
use crate::admin::{self, AdminError, Capability};
use crate::web::{csrf_ok, html, message_page, SourceAddr, WebState};

/// Refuses a form without this session's CSRF token.
macro_rules! with_csrf {
    ($session:expr, $token:expr) => {
        if !csrf_ok(&$session, &$token).await {
            return message_page(
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form has expired. Go back, reload the page and try again.",
            );
        }
    };
}

#[derive(Debug, Deserialize)]
pub struct PolicyForm {
    csrf: String,
    policy: String,
    action: String,
}

/// `POST /console/policies/{target}`: preview or save.
pub async fn policy(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(target): Path<String>,
    Form(f): Form<PolicyForm>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    let mut page = or_page!(policy_page(&state, &c, &target).await);
    page.text = f.policy.clone();
    let dry_run = f.action != "save";
    let document: Result<serde_json::Value, _> = serde_json::from_str(&f.policy);
    let outcome = match document {
        Err(e) => Err(AdminError::invalid("policy", format!("not JSON: {e}"))),
        Ok(doc) => {
            admin::policies::set_policy(
                &state.store,
                &c.who,
                &target_of(&target),
                Some(&doc),
                dry_run,
            )
            .await
        }
    };
    match outcome {
        Ok(preview) => {
            page.preview = Some(preview);
            html(StatusCode::OK, &page)
        }
        Err(AdminError::Invalid { details, .. }) => {
            page.errors = details;
            html(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => error_page(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/devices/{id}/revoke`.
pub async fn revoke_device(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(id): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    or_page!(admin::devices::revoke_device(&state.store, &c.who, &id, Some(&f.reason)).await);
    Redirect::to("/console/devices").into_response()
}

#[derive(Debug, Deserialize)]
pub struct CredentialForm {
    csrf: String,
    label: String,
    #[serde(default)]
    role: String,
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// `POST /console/identity/scim-tokens`: the new secret is on the answer page, once.
pub async fn create_scim(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Form(f): Form<CredentialForm>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    let new = or_page!(admin::credentials::create_scim(&state.store, &c.who, &f.label).await);
    let shown = Shown {
        what: "SCIM credential",
        label: new.credential.label,
        secret: new.secret,
    };
    identity_page(&state, &c, Some(shown)).await
}

/// `POST /console/identity/scim-tokens/{id}/revoke`.
pub async fn revoke_scim(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    or_page!(admin::credentials::revoke_scim(&state.store, &c.who, &id).await);
    Redirect::to("/console/identity").into_response()
}

/// `POST /console/identity/api-tokens`.
pub async fn create_api_token(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Form(f): Form<CredentialForm>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    let new = or_page!(
        admin::credentials::create_api_token(&state.store, &c.who, &f.label, &f.role).await
    );
    let shown = Shown {
        what: "API token",
        label: new.credential.label,
        secret: new.secret,
    };
    identity_page(&state, &c, Some(shown)).await
}

/// `POST /console/identity/api-tokens/{id}/revoke`.
pub async fn revoke_api_token(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    or_page!(admin::credentials::revoke_api_token(&state.store, &c.who, &id).await);
    Redirect::to("/console/identity").into_response()
}

#[derive(Deserialize)]
pub struct SignInFields {
    csrf: String,
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret: String,
    claim: String,
    match_attribute: String,
}

/// `POST /console/identity/sign-in`: connect or change the IdP people sign in with. Problems
/// are shown beside their fields and nothing is written; the secret is never echoed back.
pub async fn sign_in(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Form(f): Form<SignInFields>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    let change = SignInChange {
        issuer: f.issuer.clone(),
        client_id: f.client_id.clone(),
        client_secret: Some(f.client_secret).filter(|s| !s.trim().is_empty()),
        claim: Some(f.claim.clone()),
        match_attribute: Some(f.match_attribute.clone()),
    };
    let mut form = SignInForm {
        issuer: f.issuer,
        client_id: f.client_id,
        claim: f.claim,
        match_attribute: f.match_attribute,
        ..SignInForm::default()
    };
    match admin::settings::set_sign_in(&state.store, state.secrets.as_ref(), &c.who, &change).await
    {
        Ok(_) => form.saved = true,
        Err(AdminError::Invalid { details, .. }) => form.errors = details,
        Err(e) => return error_page(e),
    }
    identity_page_with(&state, &c, None, Some(form)).await
}

#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    csrf: String,
    offline_rule: String,
    offline_grace_seconds: String,
    deprovision_without_groups: String,
    trust_mdm_identity: String,
    key_delivery: String,
    audit_retention_days: String,
}

/// `POST /console/settings`: all fields checked before anything is written.
pub async fn settings(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Form(f): Form<SettingsForm>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    let number = |field: &str, v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| AdminError::invalid(field, format!("{field}: a whole number")))
    };
    let change = (|| -> Result<SettingsChange, AdminError> {
        Ok(SettingsChange {
            offline_rule: Some(f.offline_rule.clone()),
            offline_grace_seconds: Some(number("offline_grace_seconds", &f.offline_grace_seconds)?),
            deprovision_without_groups: Some(f.deprovision_without_groups == "true"),
            trust_mdm_identity: Some(f.trust_mdm_identity == "true"),
            key_delivery: Some(f.key_delivery.clone()),
            upstream_url: None,
            audit_retention_days: Some(number("audit_retention_days", &f.audit_retention_days)?),
        })
    })();
    let result = match change {
        Ok(change) => admin::settings::update(&state.store, &c.who, &change).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(s) => html(
            StatusCode::OK,
            &SettingsPage {
                frame: Frame::of(&c),
                s,
                can_edit: true,
                error: None,
                saved: true,
            },
        ),
        Err(AdminError::Invalid { message, .. }) => {
            let s = or_page!(admin::settings::get(&state.store, &c.who).await);
            html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SettingsPage {
                    frame: Frame::of(&c),
                    s,
                    can_edit: c.can(Capability::EditSettings),
                    error: Some(message),
                    saved: false,
                },
            )
        }
        Err(e) => error_page(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct EnrollTokenForm {
    csrf: String,
    #[serde(default)]
    days: String,
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    csrf: String,
    user: String,
    #[serde(default)]
    days: String,
}

/// Days from a form field (empty: the default).
fn days(field: &str, text: &str) -> Result<Option<i64>, AdminError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| AdminError::invalid(field, "a whole number of days"))
}

/// `POST /console/identity/enroll-tokens`.
pub async fn create_enroll_token(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Form(f): Form<EnrollTokenForm>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    let days = or_page!(days("days", &f.days));
    let new = or_page!(admin::enrollment::create_token(&state.store, &c.who, days).await);
    let shown = Shown {
        what: "Enrollment token",
        label: new.prefix,
        secret: new.secret,
    };
    identity_page(&state, &c, Some(shown)).await
}

/// `POST /console/identity/enroll-tokens/{id}/revoke`.
pub async fn revoke_enroll_token(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    or_page!(admin::enrollment::revoke_token(&state.store, &c.who, &id).await);
    Redirect::to("/console/identity").into_response()
}

/// `POST /console/identity/invites`.
pub async fn create_invite(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Form(f): Form<InviteForm>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    let days = or_page!(days("days", &f.days));
    let new = or_page!(admin::enrollment::create_invite(&state.store, &c.who, &f.user, days).await);
    let shown = Shown {
        what: "Invitation",
        label: f.user.trim().to_owned(),
        secret: new.secret,
    };
    identity_page(&state, &c, Some(shown)).await
}

/// `POST /console/identity/invites/{id}/revoke`.
pub async fn revoke_invite(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    with_csrf!(session, f.csrf);
    let c = signed_in!(state, session, source);
    or_page!(admin::enrollment::revoke_invite(&state.store, &c.who, &id).await);
    Redirect::to("/console/identity").into_response()
}
