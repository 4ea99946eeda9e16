//! Sign-in with the organisation's identity provider, as a reusable piece: the control plane
//! is the OpenID Connect relying party (`oidc.rs`), keeps the result in a server-side session
//! (`sessions.rs`), and maps the verified claims to an active provisioned user (`claims.rs`).
//! Pages that need a person (device enrollment now, the admin console next) call
//! [`current_person`] and send the browser to `/auth/login?org=…&next=…` when there is none.

pub mod claims;
pub mod oidc;
pub mod sessions;

use crate::domain::AuditAction;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_sessions::Session;

use self::oidc::{PendingAuthorization, Provider};
use super::{message_page, SourceAddr, WebState};
use crate::domain::{now_micros, Actor, Micros, OidcConfig, SignedInPerson};

/// The callback path registered at the IdP (one per control plane; the organisation travels
/// in the session).
pub const CALLBACK_PATH: &str = "/auth/callback";
/// A signed-in session ends this long after sign-in, however active.
pub const ABSOLUTE_TIMEOUT_MICROS: Micros = 12 * 3600 * 1_000_000;
/// An authorization the browser never completed is forgotten after this.
const PENDING_TIMEOUT_MICROS: Micros = 10 * 60 * 1_000_000;

const PENDING_KEY: &str = "signin.pending";
const PERSON_KEY: &str = "signin.person";

/// The redirect (callback) URL an admin registers at the IdP.
pub fn callback_url(public_url: &str) -> String {
    format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingSignIn {
    org_id: String,
    auth: PendingAuthorization,
    next: String,
    started_at: Micros,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionPerson {
    org_id: String,
    user_id: String,
    user_name: String,
    signed_in_at: Micros,
}

/// The person signed in on this session, if the sign-in is still within its absolute
/// lifetime and the person is still active (a deactivation ends every session at once).
pub async fn current_person(state: &WebState, session: &Session) -> Option<SignedInPerson> {
    let p: SessionPerson = session.get(PERSON_KEY).await.ok().flatten()?;
    if now_micros() - p.signed_in_at > ABSOLUTE_TIMEOUT_MICROS {
        let _ = session.flush().await;
        return None;
    }
    let may = state
        .store
        .person_may_hold_device(&p.org_id, &p.user_id)
        .await
        .unwrap_or(false);
    match state.store.get_user(&p.org_id, &p.user_id).await {
        Ok(Some(u)) if may => Some(SignedInPerson {
            org_id: p.org_id,
            user_id: p.user_id,
            user_name: u.user_name,
        }),
        _ => {
            let _ = session.flush().await;
            None
        }
    }
}

/// Only local paths may follow a sign-in (no open redirect).
/// Only the pages that send people to sign in, as plain printable ASCII (a tab or newline
/// would let a browser read `/\t/evil` as `//evil`).
fn safe_next(next: Option<&str>) -> String {
    const PAGES: [&str; 3] = [
        "/enroll/device/confirm",
        "/enroll/device/verify?device=",
        "/console",
    ];
    match next {
        Some(n)
            if n.len() <= 200
                && n.bytes().all(|b| (0x21..=0x7e).contains(&b))
                && !n.contains('\\')
                && PAGES
                    .iter()
                    .any(|p| n == *p || (p.ends_with('=') && n.starts_with(p))) =>
        {
            n.to_string()
        }
        _ => "/enroll/device".to_string(),
    }
}

/// The page for an organisation without sign-in (also for an unknown one: slugs cannot be
/// probed).
fn not_set_up() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "Sign-in is not set up",
        "Your organisation has not connected its identity provider to Palisade. Ask your administrator.",
    )
}

/// The organisation's OIDC configuration, or the page to answer with.
async fn sign_in_config(state: &WebState, org_id: &str) -> Result<OidcConfig, Response> {
    match state.store.oidc_config(org_id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(not_set_up()),
        Err(e) => Err(super::internal_error(e)),
    }
}

/// Sends the browser to sign in with `org_slug`'s IdP, then back to `next` (one of our pages).
pub fn sign_in_first(org_slug: &str, next: &str) -> Response {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    Redirect::to(&format!(
        "/auth/login?org={}&next={}",
        utf8_percent_encode(org_slug, NON_ALPHANUMERIC),
        utf8_percent_encode(next, NON_ALPHANUMERIC)
    ))
    .into_response()
}

/// The organisation's provider: from the cache, or discovered now.
async fn provider(state: &WebState, config: &OidcConfig) -> Result<Provider, Response> {
    if let Some(p) = state.providers.get(&config.org_id, config.updated_at) {
        return Ok(p);
    }
    let unavailable = || {
        message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            "Palisade could not reach your organisation's identity provider. Try again in a minute; if it persists, tell your administrator.",
        )
    };
    let Some(key) = &state.secrets else {
        tracing::error!(
            "sign-in needs the secrets key (--secrets-key-file) to read the client secret"
        );
        return Err(unavailable());
    };
    let secret = key.decrypt(&config.client_secret_encrypted).map_err(|e| {
        tracing::error!(error = %e, "the OIDC client secret cannot be decrypted");
        unavailable()
    })?;
    let p = Provider::discover(
        &state.http,
        &config.issuer,
        &config.client_id,
        &secret,
        &callback_url(&state.public_url),
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, issuer = %config.issuer, "OIDC discovery failed");
        unavailable()
    })?;
    state
        .providers
        .put(&config.org_id, config.updated_at, p.clone());
    Ok(p)
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    org: Option<String>,
    next: Option<String>,
}

/// `GET /auth/login?org=<slug>&next=<path>`: starts the authorization-code flow.
pub async fn login(
    State(state): State<WebState>,
    source: SourceAddr,
    session: Session,
    Query(q): Query<LoginQuery>,
) -> Response {
    if !state.allow_attempt(&source) {
        return message_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Wait a minute, then try again.",
        );
    }
    let slug = q.org.as_deref().unwrap_or(crate::domain::DEFAULT_ORG_SLUG);
    let org = match state.store.org_by_slug(slug).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_set_up(),
        Err(e) => return super::internal_error(e),
    };
    let config = match sign_in_config(&state, &org.id).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let provider = match provider(&state, &config).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let (url, auth) = provider.authorize();
    let pending = PendingSignIn {
        org_id: org.id,
        auth,
        next: safe_next(q.next.as_deref()),
        started_at: now_micros(),
    };
    if let Err(e) = session.insert(PENDING_KEY, pending).await {
        return super::internal_error(e);
    }
    Redirect::to(&url).into_response()
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: checks `state`, exchanges the code, verifies the ID token, matches the
/// person, and starts the signed-in session (with a new session id).
pub async fn callback(
    State(state): State<WebState>,
    source: SourceAddr,
    session: Session,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let pending: Option<PendingSignIn> = session.remove(PENDING_KEY).await.ok().flatten();
    let Some(pending) = pending.filter(|p| now_micros() - p.started_at < PENDING_TIMEOUT_MICROS)
    else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started here or took too long. Start again from the beginning.",
        );
    };
    let returned = q.state.as_deref().unwrap_or_default();
    if !super::constant_time_eq(returned, &pending.auth.state) {
        tracing::warn!(source = %source.0, "sign-in callback with a wrong state");
        return message_page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The answer from the identity provider does not belong to this sign-in. Start again.",
        );
    }
    if let Some(err) = &q.error {
        tracing::info!(error = %err, "the identity provider refused the sign-in");
        return message_page(
            StatusCode::FORBIDDEN,
            "Sign-in was not completed",
            "Your identity provider did not sign you in. Start again, or ask your administrator.",
        );
    }
    let Some(code) = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The identity provider sent no authorization code.",
        );
    };
    let config = match sign_in_config(&state, &pending.org_id).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let provider = match provider(&state, &config).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let claims = match provider.complete(code, &pending.auth).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "sign-in failed at the code exchange or token check");
            return message_page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                "Palisade could not verify the answer from your identity provider. Start again; if it persists, tell your administrator.",
            );
        }
    };
    let person = match claims::match_person(&state.store, &config, &claims).await {
        Ok(Ok(p)) => p,
        Ok(Err(failure)) => {
            tracing::info!(reason = %failure, sub = %claims.sub, "signed-in identity is not an active user");
            let audit = state
                .store
                .record_audit(
                    &config.org_id,
                    &Actor::Person {
                        user_id: String::new(),
                        user_name: format!("idp-sub:{}", claims.sub),
                    },
                    AuditAction::SignInRefused,
                    "Org",
                    Some(&config.org_id),
                    json!({"reason": failure.to_string(), "sub": claims.sub,
                           "claim": config.claim.as_str(), "match": config.match_attribute.as_str(),
                           "source": source.0}),
                )
                .await;
            if let Err(e) = audit {
                tracing::error!(error = %e, "recording a refused sign-in failed");
            }
            return message_page(
                StatusCode::FORBIDDEN,
                "You cannot use Palisade",
                "You signed in, but your account does not match an active person of this organisation in Palisade. If you think this is wrong, ask your administrator.",
            );
        }
        Err(e) => return super::internal_error(e),
    };
    // A new session id at the privilege change (no session fixation).
    if let Err(e) = session.cycle_id().await {
        return super::internal_error(e);
    }
    let record = SessionPerson {
        org_id: person.org_id.clone(),
        user_id: person.user_id.clone(),
        user_name: person.user_name.clone(),
        signed_in_at: now_micros(),
    };
    if let Err(e) = session.insert(PERSON_KEY, record).await {
        return super::internal_error(e);
    }
    let audit = state
        .store
        .record_audit(
            &person.org_id,
            &Actor::Person {
                user_id: person.user_id.clone(),
                user_name: person.user_name.clone(),
            },
            AuditAction::SignIn,
            "User",
            Some(&person.user_id),
            json!({"method": "oidc", "sub": claims.sub, "source": source.0}),
        )
        .await;
    if let Err(e) = audit {
        tracing::error!(error = %e, "recording a sign-in failed");
    }
    Redirect::to(&pending.next).into_response()
}

/// `POST /auth/logout`: ends the session.
pub async fn logout(session: Session) -> Response {
    let _ = session.flush().await;
    message_page(
        StatusCode::OK,
        "Signed out",
        "You are signed out of Palisade.",
    )
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_our_pages_follow_a_sign_in() {
        assert_eq!(
            safe_next(Some("/enroll/device/confirm")),
            "/enroll/device/confirm"
        );
        assert_eq!(
            safe_next(Some("/enroll/device/verify?device=abc")),
            "/enroll/device/verify?device=abc"
        );
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\\evil",
            "https://evil",
            "/enroll/device/confirm\n",
            "/admin",
        ] {
            assert_eq!(safe_next(Some(bad)), "/enroll/device", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/enroll/device");
        assert_eq!(safe_next(Some("/console")), "/console");
        assert_eq!(safe_next(Some("/console/x")), "/enroll/device");
    }
}
