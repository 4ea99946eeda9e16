//! The device-enrollment pages: the person enters (or follows a link with) the code their
//! terminal shows, signs in with the IdP, sees the device — hostname, OS, agent version, the
//! address it asked from, the code — and confirms "this is my device" (or not). The agent,
//! polling with its secret device code, then receives its credential.

use crate::domain::AuditAction;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::signin::{current_person, sign_in_first};
use super::{csrf_ok, csrf_token, html, internal_error, message_page, SourceAddr, WebState};
use crate::domain::{to_rfc3339, GrantStatus};
use crate::store::normalise_user_code;

const GRANT_KEY: &str = "enroll.grant";
const CONFIRM_PATH: &str = "/enroll/device/confirm";

#[derive(Template)]
#[template(path = "device_code.html")]
struct CodePage {
    code: String,
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage {
    csrf: String,
    grant_id: String,
    person: String,
    user_code: String,
    hostname: String,
    os: String,
    agent_version: String,
    source: String,
    expires: String,
    confirming_enrolled: bool,
}

/// The answer for a code that expired, was decided, or is not the person's organisation's.
fn code_expired() -> Response {
    message_page(
        StatusCode::GONE,
        "This code has expired",
        "Start again in your terminal to get a new code.",
    )
}

/// The answer for a device that is not the person's, not live, or already confirmed.
fn nothing_to_confirm() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "Nothing to confirm",
        "This computer is already confirmed, was removed, or is not enrolled for you.",
    )
}

/// The answer to a POST without this session's CSRF token.
fn form_expired() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form expired. Reload the page and try again.",
    )
}

#[derive(Debug, Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

/// `GET /enroll/device[?code=…]`: the code form (pre-filled from the link the agent printed).
/// It stores nothing: an anonymous visitor costs no session row. Its POST is protected by the
/// same-origin check (and is rate-limited); the session starts there.
pub async fn code_form(Query(q): Query<CodeQuery>) -> Response {
    let code = q
        .code
        .as_deref()
        .and_then(normalise_user_code)
        .unwrap_or_default();
    html(
        StatusCode::OK,
        &CodePage {
            code,
            problem: None,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    code: String,
}

/// `POST /enroll/device`: looks the code up (rate-limited per source), remembers the grant in
/// the session, and sends the person to sign in (or straight to the confirmation).
pub async fn submit_code(
    State(state): State<WebState>,
    source: SourceAddr,
    session: Session,
    Form(form): Form<CodeForm>,
) -> Response {
    let again = |status: StatusCode, problem: &str| {
        html(
            status,
            &CodePage {
                code: String::new(),
                problem: Some(problem.to_string()),
            },
        )
    };
    if !state.allow_attempt(&source) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts from your network. Wait a minute, then try again.",
        );
    }
    let grant = match normalise_user_code(&form.code) {
        Some(code) => match state.store.pending_grant_by_user_code(&code).await {
            Ok(g) => g,
            Err(e) => return internal_error(e),
        },
        None => None,
    };
    let Some(grant) = grant else {
        tracing::info!(source = %source.0, "an unknown or expired enrollment code was entered");
        return again(
            StatusCode::BAD_REQUEST,
            "That code is not valid or has expired. Check your terminal, or start again there.",
        );
    };
    if let Err(e) = session.insert(GRANT_KEY, &grant.id).await {
        return internal_error(e);
    }
    match current_person(&state, &session).await {
        Some(p) if p.org_id == grant.org_id => Redirect::to(CONFIRM_PATH).into_response(),
        _ => match state.store.org_slug(&grant.org_id).await {
            Ok(slug) => sign_in_first(&slug.unwrap_or_default(), CONFIRM_PATH),
            Err(e) => internal_error(e),
        },
    }
}

/// `GET /enroll/device/confirm`: shows the device to the signed-in person.
pub async fn confirm_page(State(state): State<WebState>, session: Session) -> Response {
    let Ok(Some(grant_id)) = session.get::<String>(GRANT_KEY).await else {
        return Redirect::to("/enroll/device").into_response();
    };
    let Some(person) = current_person(&state, &session).await else {
        return Redirect::to("/enroll/device").into_response();
    };
    let grant = match state.store.device_grant(&grant_id).await {
        Ok(Some(g))
            if g.org_id == person.org_id
                && g.status == GrantStatus::Pending
                && g.expires_at > crate::domain::now_micros() =>
        {
            g
        }
        Ok(_) => return code_expired(),
        Err(e) => return internal_error(e),
    };
    let csrf = match csrf_token(&session).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    html(
        StatusCode::OK,
        &ConfirmPage {
            csrf,
            grant_id: grant.id,
            person: person.user_name,
            user_code: grant.user_code,
            hostname: grant.hostname,
            os: grant.os,
            agent_version: grant.agent_version,
            source: grant.source_addr,
            expires: to_rfc3339(grant.expires_at),
            confirming_enrolled: grant.device_id.is_some(),
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: String,
    grant: String,
    decision: String,
}

/// `POST /enroll/device/confirm`: the person's decision.
pub async fn decide(
    State(state): State<WebState>,
    source: SourceAddr,
    session: Session,
    Form(form): Form<DecisionForm>,
) -> Response {
    if !csrf_ok(&session, &form.csrf).await {
        return form_expired();
    }
    let Ok(Some(grant_id)) = session.get::<String>(GRANT_KEY).await else {
        return Redirect::to("/enroll/device").into_response();
    };
    if grant_id != form.grant {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Request refused",
            "This confirmation belongs to another code. Start again.",
        );
    }
    let Some(person) = current_person(&state, &session).await else {
        return Redirect::to("/enroll/device").into_response();
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Request refused",
                "Choose one of the two buttons.",
            )
        }
    };
    let _ = session.remove::<String>(GRANT_KEY).await;
    match state
        .store
        .decide_device_grant(&grant_id, &person, approve, &source.0)
        .await
    {
        Ok(Ok(_)) if approve => message_page(
            StatusCode::OK,
            "Device confirmed",
            "This device is now enrolled as yours. Return to your terminal; you can close this page.",
        ),
        Ok(Ok(_)) => message_page(
            StatusCode::OK,
            "Enrollment stopped",
            "The device was not enrolled. If someone sent you this code, tell your security team.",
        ),
        Ok(Err(refusal)) => {
            tracing::info!(reason = %refusal, user = %person.user_name, "device confirmation refused");
            message_page(
                StatusCode::FORBIDDEN,
                "This device cannot be confirmed",
                "Palisade could not enroll this device for you. Ask your administrator.",
            )
        }
        Err(crate::store::StoreError::NotFound) => code_expired(),
        Err(e) => internal_error(e),
    }
}

#[derive(Template)]
#[template(path = "device_verify.html")]
struct VerifyPage {
    csrf: String,
    device_id: String,
    person: String,
    hostname: String,
    os: String,
    agent_version: String,
    enrolled: String,
}

#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    device: String,
}

/// `GET /enroll/device/verify?device=…`: the link an unverified (MDM-enrolled) device shows its
/// developer. After sign-in, shows the device if it is the person's, live and unverified.
pub async fn verify_page(
    State(state): State<WebState>,
    session: Session,
    Query(q): Query<VerifyQuery>,
) -> Response {
    let device_id: String = q.device.chars().take(64).collect();
    let Some(person) = current_person(&state, &session).await else {
        let org = match state.store.device_org_slug(&device_id).await {
            Ok(Some(slug)) => slug,
            Ok(None) => crate::domain::DEFAULT_ORG_SLUG.to_string(),
            Err(e) => return internal_error(e),
        };
        return sign_in_first(&org, &format!("/enroll/device/verify?device={device_id}"));
    };
    let device = match state.store.unverified_device_of(&device_id, &person).await {
        Ok(Some(d)) => d,
        Ok(None) => return nothing_to_confirm(),
        Err(e) => return internal_error(e),
    };
    let csrf = match csrf_token(&session).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    html(
        StatusCode::OK,
        &VerifyPage {
            csrf,
            device_id: device.id,
            person: person.user_name,
            hostname: device.hostname,
            os: device.os,
            agent_version: device.agent_version,
            enrolled: to_rfc3339(device.enrolled_at),
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    csrf: String,
    device: String,
    decision: String,
}

/// `POST /enroll/device/verify`: the person confirms (or disowns) the device.
pub async fn verify(
    State(state): State<WebState>,
    source: SourceAddr,
    session: Session,
    Form(form): Form<VerifyForm>,
) -> Response {
    if !csrf_ok(&session, &form.csrf).await {
        return form_expired();
    }
    let Some(person) = current_person(&state, &session).await else {
        return Redirect::to("/enroll/device").into_response();
    };
    let device_id: String = form.device.chars().take(64).collect();
    match state.store.unverified_device_of(&device_id, &person).await {
        Ok(Some(_)) => {}
        Ok(None) => return nothing_to_confirm(),
        Err(e) => return internal_error(e),
    }
    if form.decision != "approve" {
        let audit = state
            .store
            .record_audit(
                &person.org_id,
                &crate::domain::Actor::Person {
                    user_id: person.user_id.clone(),
                    user_name: person.user_name.clone(),
                },
                AuditAction::DeviceDisown,
                "Device",
                Some(&device_id),
                serde_json::json!({"browserSource": source.0}),
            )
            .await;
        if let Err(e) = audit {
            return internal_error(e);
        }
        return message_page(
            StatusCode::OK,
            "Not confirmed",
            "The computer stays unconfirmed and gets no API key. If you did not expect it, tell your security team.",
        );
    }
    match state
        .store
        .verify_device_by_person(&device_id, &person, &source.0)
        .await
    {
        Ok(Ok(())) => message_page(
            StatusCode::OK,
            "Computer confirmed",
            "This computer is now confirmed as yours; Claude Code receives your organisation's API key within seconds.",
        ),
        Ok(Err(refusal)) => {
            tracing::info!(reason = %refusal, user = %person.user_name, "device verification refused");
            message_page(
                StatusCode::FORBIDDEN,
                "This computer cannot be confirmed",
                "It is not enrolled for you, or was removed. Ask your administrator.",
            )
        }
        Err(e) => internal_error(e),
    }
}
