//! The console's pages that only read: each resolves the principal, calls the service layer
//! and renders its template.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::session::{console, error_page, Console};
use crate::admin::audit::{AuditEntry, AuditQuery, ExportFormat};
use crate::admin::credentials::CredentialView;
use crate::admin::people::{DeviceView, MemberDetail, MemberSummary};
use crate::admin::policies::{GroupSummary, PolicyTarget, Preview};
use crate::admin::settings::SettingsView;
use crate::admin::{self, AdminError, Capability, FieldError, Page};
use crate::web::{html, SourceAddr, WebState};

/// What every console page's frame shows.
pub struct Frame {
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
    /// Whether the admin pages are listed (any role above member).
    pub admin: bool,
}

impl Frame {
    pub fn of(c: &Console) -> Frame {
        Frame {
            name: c.name.clone(),
            role: c.who.role.as_str(),
            csrf: c.csrf.clone(),
            admin: c.can(Capability::View),
        }
    }
}

/// Resolves the principal or returns the answer to give instead.
macro_rules! signed_in {
    ($state:expr, $session:expr, $source:expr) => {
        match console(&$state, &$session, &$source).await {
            Ok(c) => c,
            Err(r) => return r,
        }
    };
}
pub(super) use signed_in;

/// Unwraps a service result or renders its error page.
macro_rules! or_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return error_page(e),
        }
    };
}
pub(super) use or_page;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    frame: Frame,
    users_active: u64,
    users_inactive: u64,
    devices_online: u64,
    devices_offline: u64,
    devices_stale: u64,
    devices_current: u64,
    devices_live: u64,
    scim: Vec<CredentialView>,
    warnings: Vec<String>,
}

/// `GET /console`: the overview (members go to their own page).
pub async fn overview(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
) -> Response {
    let c = signed_in!(state, session, source);
    if !c.can(Capability::View) {
        return axum::response::Redirect::to("/console/me").into_response();
    }
    let counts = or_page!(state
        .store
        .fleet_counts(&c.who.org_id, crate::domain::now_micros())
        .await
        .map_err(AdminError::from));
    let scim = or_page!(admin::credentials::list_scim(&state.store, &c.who).await);
    let mut warnings = Vec::new();
    if c.can(Capability::ViewAudit) {
        for action in ["device.warning", "device.nack", "device.tamper"] {
            let q = AuditQuery {
                action: Some(action.to_owned()),
                since: Some(crate::domain::to_rfc3339(
                    crate::domain::now_micros() - 7 * 86_400 * 1_000_000,
                )),
                ..AuditQuery::default()
            };
            let page = or_page!(admin::audit::page(&state.store, &c.who, &q, None, Some(5)).await);
            warnings.extend(page.items.iter().map(|e| {
                format!(
                    "{} {} ({}): {}",
                    e.at,
                    e.action,
                    e.resource_id.as_deref().unwrap_or(""),
                    e.detail
                )
            }));
        }
    }
    html(
        StatusCode::OK,
        &OverviewPage {
            frame: Frame::of(&c),
            users_active: counts.users_active,
            users_inactive: counts.users_inactive,
            devices_online: counts.devices_online,
            devices_offline: counts.devices_offline,
            devices_stale: counts.devices_stale,
            devices_current: counts.devices_current,
            devices_live: counts.devices_live,
            scim: scim
                .into_iter()
                .filter(|t| t.revoked_at.is_none())
                .collect(),
            warnings,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    frame: Frame,
    q: String,
    /// `q=…` encoded, for the next-page link.
    q_query: String,
    page: Page<MemberSummary>,
}

/// `GET /console/members`.
pub async fn members(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Query(q): Query<ListQuery>,
) -> Response {
    let c = signed_in!(state, session, source);
    let page = or_page!(
        admin::people::list_members(&state.store, &c.who, &q.q, q.cursor.as_deref(), None).await
    );
    let q_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", &q.q)
        .finish();
    html(
        StatusCode::OK,
        &MembersPage {
            frame: Frame::of(&c),
            q: q.q,
            q_query,
            page,
        },
    )
}

/// One row of an explained policy.
pub struct KeyRow {
    key: String,
    value: String,
    rule: String,
    sources: String,
}

fn key_rows(explanation: &serde_json::Value) -> Vec<KeyRow> {
    explanation
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| KeyRow {
                    key: k["key"].as_str().unwrap_or_default().to_owned(),
                    value: k["value"].to_string(),
                    rule: k["rule"].as_str().unwrap_or_default().to_owned(),
                    sources: k["sources"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(|s| s["source"].as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "console/member.html")]
struct MemberPage {
    frame: Frame,
    heading: String,
    m: MemberDetail,
    keys: Vec<KeyRow>,
}

/// `GET /console/members/{id}`.
pub async fn member(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(id): Path<String>,
) -> Response {
    let c = signed_in!(state, session, source);
    let m = or_page!(admin::people::member(&state.store, &c.who, &id).await);
    let keys = key_rows(&m.explanation);
    html(
        StatusCode::OK,
        &MemberPage {
            frame: Frame::of(&c),
            heading: m.user_name.clone(),
            m,
            keys,
        },
    )
}

/// `GET /console/me`: the signed-in person's devices and policy.
pub async fn me(State(state): State<WebState>, session: Session, source: SourceAddr) -> Response {
    let c = signed_in!(state, session, source);
    if c.who.user_id.is_none() {
        return crate::web::message_page(
            StatusCode::OK,
            "No devices",
            "You are signed in with the owner link, which is not a person: it holds no devices.",
        );
    }
    let m = or_page!(admin::people::me(&state.store, &c.who).await);
    let keys = key_rows(&m.explanation);
    html(
        StatusCode::OK,
        &MemberPage {
            frame: Frame::of(&c),
            heading: "My devices".to_owned(),
            m,
            keys,
        },
    )
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    frame: Frame,
    groups: Page<GroupSummary>,
}

#[derive(Debug, Deserialize)]
pub struct CursorQuery {
    cursor: Option<String>,
}

/// `GET /console/policies`.
pub async fn policies(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Query(q): Query<CursorQuery>,
) -> Response {
    let c = signed_in!(state, session, source);
    let groups = or_page!(
        admin::policies::list_groups(&state.store, &c.who, q.cursor.as_deref(), None).await
    );
    html(
        StatusCode::OK,
        &PoliciesPage {
            frame: Frame::of(&c),
            groups,
        },
    )
}

#[derive(Template)]
#[template(path = "console/policy.html")]
pub struct PolicyPage {
    pub frame: Frame,
    pub title: String,
    pub target: String,
    pub text: String,
    pub can_edit: bool,
    pub errors: Vec<FieldError>,
    pub preview: Option<Preview>,
    /// Saved versions, newest first, each with its text to restore.
    pub history: Vec<(crate::admin::policies::PolicyVersion, String)>,
}

/// The target a URL names: `defaults` or a group id.
pub fn target_of(segment: &str) -> PolicyTarget {
    if segment == "defaults" {
        PolicyTarget::Defaults
    } else {
        PolicyTarget::Group(segment.to_owned())
    }
}

/// The page of one policy, with its current text.
pub async fn policy_page(
    state: &WebState,
    c: &Console,
    segment: &str,
) -> Result<PolicyPage, AdminError> {
    let target = target_of(segment);
    let view = match &target {
        PolicyTarget::Defaults => admin::policies::defaults(&state.store, &c.who).await?,
        PolicyTarget::Group(id) => admin::policies::group_policy(&state.store, &c.who, id).await?,
    };
    let history = if c.can(Capability::ViewAudit) {
        admin::policies::history(&state.store, &c.who, &target, 20)
            .await?
            .into_iter()
            .map(|v| {
                let text = v
                    .policy
                    .as_ref()
                    .map(|p| serde_json::to_string_pretty(p).unwrap_or_default())
                    .unwrap_or_else(|| "{}".to_owned());
                (v, text)
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(PolicyPage {
        frame: Frame::of(c),
        title: match &view.group {
            Some(g) => format!("Policy of {g}"),
            None => "Organisation defaults".to_owned(),
        },
        target: segment.to_owned(),
        text: view
            .policy
            .as_ref()
            .map(|p| serde_json::to_string_pretty(p).unwrap_or_default())
            .unwrap_or_else(|| "{}".to_owned()),
        can_edit: c.can(Capability::EditPolicy),
        errors: Vec::new(),
        preview: None,
        history,
    })
}

/// `GET /console/policies/{target}`.
pub async fn policy(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Path(target): Path<String>,
) -> Response {
    let c = signed_in!(state, session, source);
    let page = or_page!(policy_page(&state, &c, &target).await);
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct DevicesPage {
    frame: Frame,
    page: Page<DeviceView>,
    can_revoke: bool,
}

/// `GET /console/devices`.
pub async fn devices(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Query(q): Query<CursorQuery>,
) -> Response {
    let c = signed_in!(state, session, source);
    let page = or_page!(
        admin::devices::list_devices(&state.store, &c.who, q.cursor.as_deref(), None).await
    );
    html(
        StatusCode::OK,
        &DevicesPage {
            frame: Frame::of(&c),
            page,
            can_revoke: c.can(Capability::ManageDevices),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    person: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    cursor: Option<String>,
    format: Option<String>,
}

impl AuditForm {
    fn query(&self) -> AuditQuery {
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        AuditQuery {
            actor: opt(&self.actor),
            action: opt(&self.action),
            person: opt(&self.person),
            since: opt(&self.since),
            until: opt(&self.until),
        }
    }

    /// The filters as a query string, for paging and export links.
    fn query_string(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("person", &self.person),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    actor: String,
    action: String,
    person: String,
    since: String,
    until: String,
    query: String,
    page: Page<AuditEntry>,
}

/// `GET /console/audit`.
pub async fn audit(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Query(f): Query<AuditForm>,
) -> Response {
    let c = signed_in!(state, session, source);
    let page = or_page!(
        admin::audit::page(&state.store, &c.who, &f.query(), f.cursor.as_deref(), None).await
    );
    let query = f.query_string();
    html(
        StatusCode::OK,
        &AuditPage {
            frame: Frame::of(&c),
            actor: f.actor,
            action: f.action,
            person: f.person,
            since: f.since,
            until: f.until,
            query,
            page,
        },
    )
}

/// `GET /console/audit/export`: the filtered trail as a download.
pub async fn audit_export(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
    Query(f): Query<AuditForm>,
) -> Response {
    let c = signed_in!(state, session, source);
    let format = or_page!(ExportFormat::parse(f.format.as_deref()));
    let stream = or_page!(admin::audit::export(&state.store, &c.who, &f.query(), format).await);
    crate::api::audit::export_download(format, stream)
}

/// A secret to show once on the identity page.
pub struct Shown {
    pub what: &'static str,
    pub label: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "console/identity.html")]
struct IdentityPage {
    frame: Frame,
    scim_base_url: String,
    scim: Vec<CredentialView>,
    api: Vec<CredentialView>,
    enroll_tokens: Vec<crate::admin::enrollment::EnrollTokenView>,
    sign_in: Option<crate::admin::settings::SignInView>,
    callback_url: String,
    invites: Vec<crate::admin::enrollment::InviteView>,
    can_manage: bool,
    shown: Option<Shown>,
    sign_in_form: SignInForm,
}

/// The sign-in form's state: what was typed (never the secret) and the problems found.
#[derive(Default)]
pub struct SignInForm {
    pub issuer: String,
    pub client_id: String,
    pub claim: String,
    pub match_attribute: String,
    pub errors: Vec<crate::admin::FieldError>,
    pub saved: bool,
}

impl SignInForm {
    /// The message for `field`, if it has a problem.
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field.as_deref() == Some(field))
            .map(|e| e.message.as_str())
    }
}

/// Renders the identity page, with a new secret to show once.
pub async fn identity_page(state: &WebState, c: &Console, shown: Option<Shown>) -> Response {
    identity_page_with(state, c, shown, None).await
}

/// Renders the identity page; `form` carries a sign-in form that was just submitted.
pub async fn identity_page_with(
    state: &WebState,
    c: &Console,
    shown: Option<Shown>,
    form: Option<SignInForm>,
) -> Response {
    let scim = or_page!(admin::credentials::list_scim(&state.store, &c.who).await);
    let api = or_page!(admin::credentials::list_api_tokens(&state.store, &c.who).await);
    let enroll_tokens = or_page!(admin::enrollment::list_tokens(&state.store, &c.who).await);
    let invites = or_page!(admin::enrollment::list_invites(&state.store, &c.who).await);
    let sign_in = or_page!(admin::settings::sign_in(&state.store, &c.who).await);
    let status = match &form {
        Some(f) if !f.errors.is_empty() => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    let sign_in_form = form.unwrap_or_else(|| match &sign_in {
        Some(o) => SignInForm {
            issuer: o.issuer.clone(),
            client_id: o.client_id.clone(),
            claim: o.claim.clone(),
            match_attribute: o.match_attribute.clone(),
            ..SignInForm::default()
        },
        None => SignInForm {
            claim: "email".to_owned(),
            match_attribute: "userName".to_owned(),
            ..SignInForm::default()
        },
    });
    html(
        status,
        &IdentityPage {
            frame: Frame::of(c),
            scim_base_url: format!("{}{}", state.public_url, crate::scim::SCIM_PREFIX),
            scim,
            api,
            enroll_tokens,
            sign_in,
            callback_url: crate::web::signin::callback_url(&state.public_url),
            invites,
            can_manage: c.can(Capability::ManageCredentials),
            shown,
            sign_in_form,
        },
    )
}

/// `GET /console/identity`.
pub async fn identity(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
) -> Response {
    let c = signed_in!(state, session, source);
    identity_page(&state, &c, None).await
}

#[derive(Template)]
#[template(path = "console/settings.html")]
pub struct SettingsPage {
    pub frame: Frame,
    pub s: SettingsView,
    pub can_edit: bool,
    pub error: Option<String>,
    pub saved: bool,
}

/// `GET /console/settings`.
pub async fn settings(
    State(state): State<WebState>,
    session: Session,
    source: SourceAddr,
) -> Response {
    let c = signed_in!(state, session, source);
    let s = or_page!(admin::settings::get(&state.store, &c.who).await);
    html(
        StatusCode::OK,
        &SettingsPage {
            frame: Frame::of(&c),
            s,
            can_edit: c.can(Capability::EditSettings),
            error: None,
            saved: false,
        },
    )
}
