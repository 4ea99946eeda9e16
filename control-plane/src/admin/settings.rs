//! The organisation's settings as admins see and change them: the offline rule and grace,
//! deprovisioning without groups, trusting MDM identity, key delivery, the relays' upstream
//! and the audit retention; and how people sign in (the OpenID Connect client).

use serde::{Deserialize, Serialize};

use anyhow::{anyhow, bail};

use super::{AdminError, AdminResult, Capability, FieldError, Principal};
use crate::crypto::SecretsKey;
use crate::domain::{now_micros, AuditAction, IdentityClaim, MatchAttribute, OidcConfig};
use crate::store::{KeyDelivery, OfflineRule, OrgSettings, Store};

/// The settings (the default policy is under policies).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    /// `keep_last` or `lockdown`.
    pub offline_rule: String,
    pub offline_grace_seconds: i64,
    pub deprovision_without_groups: bool,
    pub trust_mdm_identity: bool,
    /// `proxy` or `helper`.
    pub key_delivery: String,
    /// Where relays forward; absent: the Anthropic API.
    pub upstream_url: Option<String>,
    pub audit_retention_days: i64,
}

/// A change: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    pub offline_rule: Option<String>,
    pub offline_grace_seconds: Option<i64>,
    pub deprovision_without_groups: Option<bool>,
    pub trust_mdm_identity: Option<bool>,
    pub key_delivery: Option<String>,
    /// An https URL (http only to loopback), or `default` for the Anthropic API.
    pub upstream_url: Option<String>,
    pub audit_retention_days: Option<i64>,
}

/// How people sign in (the OpenID Connect relying party), without its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignInView {
    pub issuer: String,
    pub client_id: String,
    /// The ID-token claim that names the person.
    pub claim: String,
    /// The SCIM attribute it is matched against.
    pub match_attribute: String,
}

/// A new sign-in configuration. The client secret may be left out to keep the stored one.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInChange {
    /// The IdP's issuer URL: https (http only on loopback).
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    /// Required the first time; absent or empty keeps the stored secret.
    pub client_secret: Option<String>,
    /// `email` (default), `preferred_username`, `sub` or `upn`.
    pub claim: Option<String>,
    /// `userName` (default), `email` or `externalId`.
    pub match_attribute: Option<String>,
}

/// An OpenID issuer URL: https, or http only on a loopback address (a test IdP).
pub fn check_issuer_url(text: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(text.trim()).map_err(|_| "not a URL")?;
    https_or_loopback_http(&url)
        .map_err(|_| "must be an https:// URL (http:// only on loopback)")?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("no credentials or fragment in the issuer URL");
    }
    // The issuer is compared byte for byte with the ID token's `iss`: keep what was typed.
    Ok(text.trim().to_owned())
}

/// A URL Palisade itself calls must be https, or plain http to a loopback address only.
fn https_or_loopback_http(url: &url::Url) -> Result<(), &'static str> {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("no host"),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("plain http only to a loopback address; use https"),
        _ => Err("use https"),
    }
}

/// Creates or replaces the organisation's sign-in configuration; every field is checked before
/// anything is written, and the client secret is stored encrypted. Audited with the actor.
pub async fn set_sign_in(
    store: &Store,
    secrets: Option<&SecretsKey>,
    who: &Principal,
    change: &SignInChange,
) -> AdminResult<SignInView> {
    who.require(Capability::ManageCredentials)?;
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: &str| {
        problems.push(FieldError {
            field: Some(field.to_owned()),
            message: message.to_owned(),
        })
    };
    let issuer = check_issuer_url(&change.issuer).unwrap_or_else(|e| {
        problem("issuer", e);
        String::new()
    });
    let client_id = change.client_id.trim();
    if client_id.is_empty() || client_id.len() > 512 {
        problem("client_id", "between 1 and 512 characters");
    }
    let claim = IdentityClaim::parse(change.claim.as_deref().unwrap_or("email"));
    if claim.is_none() {
        problem("claim", "one of email, preferred_username, sub, upn");
    }
    let attribute = MatchAttribute::parse(change.match_attribute.as_deref().unwrap_or("userName"));
    if attribute.is_none() {
        problem("match_attribute", "one of userName, email, externalId");
    }
    let existing = store.oidc_config(&who.org_id).await?;
    let secret = change
        .client_secret
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if secret.is_some_and(|s| s.len() > 4096) {
        problem("client_secret", "at most 4096 characters");
    }
    if secret.is_none() && existing.is_none() {
        problem("client_secret", "required the first time sign-in is set up");
    }
    let (Some(claim), Some(match_attribute)) = (claim, attribute) else {
        return Err(invalid_fields(problems));
    };
    if !problems.is_empty() {
        return Err(invalid_fields(problems));
    }
    let client_secret_encrypted = match (secret, existing) {
        (Some(secret), _) => secrets
            .ok_or_else(|| {
                AdminError::Unavailable(
                    "the client secret is stored encrypted and this control plane has no secrets key"
                        .into(),
                )
            })?
            .encrypt(secret),
        (None, Some(existing)) => existing.client_secret_encrypted,
        (None, None) => return Err(AdminError::invalid("client_secret", "required")),
    };
    let config = OidcConfig {
        org_id: who.org_id.clone(),
        issuer,
        client_id: client_id.to_owned(),
        client_secret_encrypted,
        claim,
        match_attribute,
        updated_at: now_micros(),
    };
    store.set_oidc_config(&config, &who.actor).await?;
    Ok(sign_in_view(config))
}

fn invalid_fields(details: Vec<FieldError>) -> AdminError {
    let message = details
        .iter()
        .map(|d| format!("{}: {}", d.field.as_deref().unwrap_or("request"), d.message))
        .collect::<Vec<_>>()
        .join("; ");
    AdminError::Invalid {
        field: details.first().and_then(|d| d.field.clone()),
        message,
        details,
    }
}

fn sign_in_view(c: OidcConfig) -> SignInView {
    SignInView {
        issuer: c.issuer,
        client_id: c.client_id,
        claim: c.claim.as_str().to_owned(),
        match_attribute: c.match_attribute.as_str().to_owned(),
    }
}

/// The organisation's sign-in configuration, if it has one (set with `oidc set`).
pub async fn sign_in(store: &Store, who: &Principal) -> AdminResult<Option<SignInView>> {
    who.require(Capability::View)?;
    Ok(store.oidc_config(&who.org_id).await?.map(sign_in_view))
}

fn view(s: &OrgSettings) -> SettingsView {
    SettingsView {
        offline_rule: s.offline_rule.as_str().to_owned(),
        offline_grace_seconds: s.offline_grace_seconds,
        deprovision_without_groups: s.deprovision_without_groups,
        trust_mdm_identity: s.trust_mdm_identity,
        key_delivery: s.key_delivery.as_str().to_owned(),
        upstream_url: s.upstream_url.clone(),
        audit_retention_days: s.audit_retention_days,
    }
}

pub async fn get(store: &Store, who: &Principal) -> AdminResult<SettingsView> {
    who.require(Capability::View)?;
    Ok(view(&store.org_settings(&who.org_id).await?))
}

/// Applies `change` (all fields checked before anything is written).
pub async fn update(
    store: &Store,
    who: &Principal,
    change: &SettingsChange,
) -> AdminResult<SettingsView> {
    who.require(Capability::EditSettings)?;
    let mut s = store.org_settings(&who.org_id).await?;
    if let Some(rule) = &change.offline_rule {
        s.offline_rule = OfflineRule::parse(rule)
            .ok_or_else(|| AdminError::invalid("offline_rule", "keep_last or lockdown"))?;
    }
    if let Some(grace) = change.offline_grace_seconds {
        if !(60..=365 * 86_400).contains(&grace) {
            return Err(AdminError::invalid(
                "offline_grace_seconds",
                "between 60 seconds and 365 days",
            ));
        }
        s.offline_grace_seconds = grace;
    }
    if let Some(v) = change.deprovision_without_groups {
        s.deprovision_without_groups = v;
    }
    if let Some(v) = change.trust_mdm_identity {
        s.trust_mdm_identity = v;
    }
    if let Some(k) = &change.key_delivery {
        s.key_delivery = KeyDelivery::parse(k)
            .ok_or_else(|| AdminError::invalid("key_delivery", "proxy or helper"))?;
    }
    if let Some(u) = &change.upstream_url {
        s.upstream_url = if u == "default" {
            None
        } else {
            Some(
                check_upstream_url(u)
                    .map_err(|e| AdminError::invalid("upstream_url", e.to_string()))?,
            )
        };
    }
    if let Some(days) = change.audit_retention_days {
        if !(1..=3650).contains(&days) {
            return Err(AdminError::invalid(
                "audit_retention_days",
                "between 1 and 3650",
            ));
        }
        s.audit_retention_days = days;
    }
    store
        .set_org_settings(&who.org_id, &s, &who.actor, AuditAction::OrgSettingsSet)
        .await?;
    Ok(view(&s))
}

/// An upstream base URL the relays may forward to: https (http only to loopback), with no
/// credentials, query or fragment.
pub fn check_upstream_url(text: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(text).map_err(|e| anyhow!("--upstream-url {text:?}: {e}"))?;
    if let Err(why) = https_or_loopback_http(&url) {
        bail!("--upstream-url {text:?}: {why}");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("--upstream-url {text:?}: no credentials in the URL (the relay adds the key)");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--upstream-url {text:?}: no query or fragment");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}
