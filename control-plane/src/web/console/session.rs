//! The principal of a console request, from the browser session, and sign-in with the one-time
//! owner link.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::admin::people::roles_of;
use crate::admin::{AdminError, AdminRole, Capability, Principal};
use crate::domain::{now_micros, Actor, Micros};
use crate::web::signin::{current_person, ABSOLUTE_TIMEOUT_MICROS};
use crate::web::{csrf_token, internal_error, message_page, SourceAddr, WebState};

const OWNER_KEY: &str = "console.owner";

/// A session signed in with the owner link.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OwnerSession {
    org_id: String,
    link_id: String,
    signed_in_at: Micros,
}

/// Who is using the console, and what the page needs to draw its frame.
pub struct Console {
    pub who: Principal,
    /// The name shown in the header.
    pub name: String,
    pub csrf: String,
}

impl Console {
    /// Whether the role may do `what` (to show or hide a control).
    pub fn can(&self, what: Capability) -> bool {
        self.who.role.allows(what)
    }
}

/// The signed-in principal, or the answer to give instead: to the sign-in page when there is
/// none.
pub async fn console(
    state: &WebState,
    session: &Session,
    source: &SourceAddr,
) -> Result<Console, Response> {
    let csrf = csrf_token(session).await?;
    if let Ok(Some(owner)) = session.get::<OwnerSession>(OWNER_KEY).await {
        if now_micros() - owner.signed_in_at <= ABSOLUTE_TIMEOUT_MICROS {
            let name = format!("owner-link:{}", owner.link_id);
            return Ok(Console {
                who: Principal {
                    org_id: owner.org_id,
                    role: AdminRole::Owner,
                    actor: Actor::Admin {
                        name: name.clone(),
                        source: source.0.clone(),
                    },
                    user_id: None,
                },
                name: "owner (sign-in link)".to_owned(),
                csrf,
            });
        }
        let _ = session.flush().await;
    }
    let Some(person) = current_person(state, session).await else {
        return Err(Redirect::to("/auth/login?next=/console").into_response());
    };
    let inputs = match state.store.user_policy_inputs(&person.user_id).await {
        Ok(Some(i)) => i,
        Ok(None) => return Err(Redirect::to("/auth/login?next=/console").into_response()),
        Err(e) => return Err(internal_error(e)),
    };
    Ok(Console {
        who: Principal {
            org_id: person.org_id,
            role: AdminRole::of_person(&roles_of(&inputs)),
            actor: Actor::Admin {
                name: format!("person:{}", person.user_name),
                source: source.0.clone(),
            },
            user_id: Some(person.user_id),
        },
        name: person.user_name,
        csrf,
    })
}

/// An admin error as a page.
pub fn error_page(e: AdminError) -> Response {
    let status = crate::api::error::status(&e);
    if let AdminError::Internal(inner) = &e {
        return internal_error(inner);
    }
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        _ => "Cannot do that",
    };
    message_page(status, heading, &e.to_string())
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    link: Option<String>,
}

/// `GET /console/login?link=…`: signs this browser in as owner with a one-time link (from
/// `admin login-link`); without a link, to the organisation's IdP.
pub async fn login(
    State(state): State<WebState>,
    source: SourceAddr,
    session: Session,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(link) = q.link else {
        return Redirect::to("/auth/login?next=/console").into_response();
    };
    if !state.allow_attempt(&source) {
        return message_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Wait a minute, then try again.",
        );
    }
    match state.store.redeem_login_link(&link, &source.0).await {
        Ok(Some(redeemed)) => {
            // A new session id: whatever id this browser had before signing in is worthless.
            if let Err(e) = session.cycle_id().await {
                return internal_error(e);
            }
            let record = OwnerSession {
                org_id: redeemed.org_id,
                link_id: redeemed.id,
                signed_in_at: now_micros(),
            };
            if let Err(e) = session.insert(OWNER_KEY, record).await {
                return internal_error(e);
            }
            Redirect::to("/console").into_response()
        }
        Ok(None) => message_page(
            StatusCode::UNAUTHORIZED,
            "This link does not work",
            "A sign-in link works once and for ten minutes. Ask for a new one with `palisade-control-plane admin login-link`.",
        ),
        Err(e) => internal_error(e),
    }
}
