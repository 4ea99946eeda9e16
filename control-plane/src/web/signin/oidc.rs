//! The OpenID Connect relying party, on the `openidconnect` crate: discovery (cached per
//! organisation), the authorization-code flow with PKCE and a nonce, ID-token signature,
//! issuer, audience, expiry and nonce checks, and userinfo when the ID token is thin.
//! Nothing here parses or verifies a token by hand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};

/// Claims beyond the standard ones that IdPs use to name people: Entra's `upn`, and `groups`.
/// Kept as loose JSON so an IdP's unusual shape never fails the whole token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<serde_json::Value>,
}
impl AdditionalClaims for ExtraClaims {}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponseWithClaims = StandardTokenResponse<IdFields, CoreTokenType>;
type RelyingParty = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponseWithClaims,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in could not complete. Details go to the log; the page says little.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider's configuration could not be read: {0}")]
    Discovery(String),
    #[error("invalid OpenID Connect setting: {0}")]
    Config(String),
    #[error("the identity provider refused the code exchange: {0}")]
    Exchange(String),
    #[error("the ID token failed verification: {0}")]
    IdToken(String),
    #[error("userinfo failed: {0}")]
    UserInfo(String),
}

/// What the IdP says about the person, from the verified ID token and, where it is thin,
/// from userinfo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonClaims {
    pub sub: String,
    pub email: Option<String>,
    /// `Some(false)` when the IdP says the email is not verified.
    pub email_verified: Option<bool>,
    pub preferred_username: Option<String>,
    pub upn: Option<String>,
    pub groups: Vec<String>,
}

/// A started authorization: the URL to send the browser to and what the callback must match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The relying party of one organisation's provider.
#[derive(Clone)]
pub struct Provider {
    client: RelyingParty,
    http: openidconnect::reqwest::Client,
}

fn text(v: &Option<serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn strings(v: &Option<serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

impl Provider {
    /// Discovers the issuer and builds the client. `redirect` is this control plane's callback.
    pub async fn discover(
        http: &openidconnect::reqwest::Client,
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        redirect: &str,
    ) -> Result<Provider, OidcError> {
        let issuer = IssuerUrl::new(issuer.to_string())
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let client = RelyingParty::from_provider_metadata(
            metadata,
            ClientId::new(client_id.to_string()),
            Some(ClientSecret::new(client_secret.to_string())),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect.to_string())
                .map_err(|e| OidcError::Config(format!("redirect URL: {e}")))?,
        );
        Ok(Provider {
            client,
            http: http.clone(),
        })
    }

    /// The IdP's authorization URL (code flow, PKCE S256, state, nonce) and what to remember.
    pub fn authorize(&self) -> (String, PendingAuthorization) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_string()))
            .add_scope(Scope::new("profile".to_string()))
            .set_pkce_challenge(challenge)
            .url();
        (
            url.to_string(),
            PendingAuthorization {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        )
    }

    /// Exchanges the code, verifies the ID token and, when it lacks the email, username or
    /// groups, asks userinfo (for the same subject).
    pub async fn complete(
        &self,
        code: &str,
        pending: &PendingAuthorization,
    ) -> Result<PersonClaims, OidcError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the token response has no ID token".into()))?;
        let verifier = self.client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce.clone()))
            .map_err(|e| OidcError::IdToken(error_chain(&e)))?;
        let mut person = PersonClaims {
            sub: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified(),
            preferred_username: claims.preferred_username().map(|u| u.to_string()),
            upn: text(&claims.additional_claims().upn),
            groups: strings(&claims.additional_claims().groups),
        };
        let thin = person.email.is_none()
            || person.preferred_username.is_none()
            || person.groups.is_empty();
        if thin {
            if let Ok(request) = self.client.user_info(
                response.access_token().clone(),
                Some(claims.subject().clone()),
            ) {
                let info: UserInfoClaims<ExtraClaims, CoreGenderClaim> = request
                    .request_async(&self.http)
                    .await
                    .map_err(|e| OidcError::UserInfo(error_chain(&e)))?;
                if person.email.is_none() {
                    person.email = info.email().map(|e| e.to_string());
                    person.email_verified = info.email_verified();
                }
                if person.preferred_username.is_none() {
                    person.preferred_username = info.preferred_username().map(|u| u.to_string());
                }
                if person.upn.is_none() {
                    person.upn = text(&info.additional_claims().upn);
                }
                if person.groups.is_empty() {
                    person.groups = strings(&info.additional_claims().groups);
                }
            }
        }
        Ok(person)
    }
}

/// An error and its causes on one line, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Discovered providers, per organisation, refreshed after an hour or when the configuration
/// changes (so a key rotation at the IdP is picked up without a restart).
/// One cached provider: the configuration version it was built from and when.
type CachedProvider = (i64, Instant, Provider);

#[derive(Clone, Default)]
pub struct ProviderCache {
    entries: Arc<Mutex<HashMap<String, CachedProvider>>>,
}

const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

impl ProviderCache {
    pub fn get(&self, org_id: &str, config_version: i64) -> Option<Provider> {
        let entries = self.entries.lock().ok()?;
        let (version, at, provider) = entries.get(org_id)?;
        (*version == config_version && at.elapsed() < DISCOVERY_TTL).then(|| provider.clone())
    }

    pub fn put(&self, org_id: &str, config_version: i64, provider: Provider) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                org_id.to_string(),
                (config_version, Instant::now(), provider),
            );
        }
    }
}

/// The HTTP client the relying party uses: no redirects (SSRF), bounded time.
pub fn http_client() -> Result<openidconnect::reqwest::Client, OidcError> {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OidcError::Config(e.to_string()))
}
