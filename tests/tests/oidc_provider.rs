//! The OpenID Provider harness against itself: a minimal openidconnect-rs relying party signs in over plain HTTP and in headless Chromium.
//!
//! No control plane here: these tests prove `palisade_tests::oidc` and `palisade_tests::browser`
//! (discovery, PKCE + nonce, the login form, code exchange with client_secret_basic and
//! client_secret_post, ID token verification, userinfo; rich and thin ID tokens; a wrong password
//! refused) so that the control plane's tests can rely on them.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims,
    IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
    UserInfoClaims,
};
use palisade_tests::browser::Browser;
use palisade_tests::oidc::{
    self, login_over_http, CallbackSink, ClaimsMode, LoginRefused, OpAccount, OpClient, OpConfig,
    TestOp,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};

const CLIENT_ID: &str = "palisade-test";
const CLIENT_SECRET: &str = "palisade-test-secret";
const PASSWORD: &str = "correct horse battery staple";
/// A redirect URI nothing listens on: the HTTP flow never follows the provider's last redirect.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// The claims beyond the standard ones that Palisade reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExtraClaims {
    #[serde(default)]
    groups: Vec<String>,
    upn: Option<String>,
}

impl AdditionalClaims for ExtraClaims {}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResp = StandardTokenResponse<IdFields, CoreTokenType>;
/// `CoreClient` with [`ExtraClaims`], in the endpoint state `from_provider_metadata` gives.
type RpClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResp,
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

fn alice() -> OpAccount {
    let mut alice = OpAccount::new("00u-alice", "alice@example.com", PASSWORD)
        .groups(&["engineering", "palisade-admins"]);
    alice.name = "Alice Example".to_owned();
    alice.upn = Some("alice@corp.example.com".to_owned());
    alice
}

fn start_op(mode: ClaimsMode, redirect_uri: &str) -> Result<TestOp> {
    TestOp::start(
        &OpConfig::new(mode)
            .client(OpClient::new(CLIENT_ID, CLIENT_SECRET, redirect_uri))
            .account(alice())
            .account(OpAccount::new(
                "00u-bob",
                "bob@example.com",
                "bob's password",
            )),
    )
}

/// The relying party's back-channel HTTP client: no redirects, no cookies.
fn rp_http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

async fn discover(op: &TestOp, http: &reqwest::Client, redirect_uri: &str) -> Result<RpClient> {
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(op.issuer().to_owned())?, http)
            .await
            .context("discovery")?;
    Ok(RpClient::from_provider_metadata(
        metadata,
        ClientId::new(CLIENT_ID.to_owned()),
        Some(ClientSecret::new(CLIENT_SECRET.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned())?))
}

struct Pending {
    url: Url,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn authorize(client: &RpClient) -> Pending {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .add_scope(Scope::new("groups".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    Pending {
        url,
        state,
        nonce,
        verifier,
    }
}

struct SignedIn {
    id: IdTokenClaims<ExtraClaims, CoreGenderClaim>,
    userinfo: UserInfoClaims<ExtraClaims, CoreGenderClaim>,
}

/// What the RP's callback does: check state and iss, exchange the code, verify the ID token,
/// fetch userinfo.
async fn finish(
    op: &TestOp,
    client: RpClient,
    http: &reqwest::Client,
    pending: Pending,
    callback: &Url,
) -> Result<SignedIn> {
    let param = |name| oidc::query_param(callback, name);
    assert_eq!(param("error"), None, "error response: {callback}");
    assert_eq!(
        param("state").as_deref(),
        Some(pending.state.secret().as_str())
    );
    assert_eq!(param("iss").as_deref(), Some(op.issuer()), "RFC 9207 iss");
    let code = param("code").ok_or_else(|| anyhow!("no code in {callback}"))?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))?
        .set_pkce_verifier(pending.verifier)
        .request_async(http)
        .await
        .map_err(|e| anyhow!("code exchange: {e:?}"))?;
    let id_token = token.id_token().context("no id_token")?;
    let id = id_token
        .claims(&client.id_token_verifier(), &pending.nonce)
        .context("ID token verification")?
        .clone();
    let userinfo: UserInfoClaims<ExtraClaims, CoreGenderClaim> = client
        .user_info(token.access_token().clone(), Some(id.subject().clone()))?
        .request_async(http)
        .await
        .map_err(|e| anyhow!("userinfo: {e:?}"))?;
    Ok(SignedIn { id, userinfo })
}

fn assert_full_userinfo(userinfo: &UserInfoClaims<ExtraClaims, CoreGenderClaim>) {
    assert_eq!(userinfo.subject().as_str(), "00u-alice");
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(userinfo.email_verified(), Some(true));
    assert_eq!(
        userinfo.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(
        userinfo.additional_claims().groups,
        ["engineering", "palisade-admins"]
    );
    assert_eq!(
        userinfo.additional_claims().upn.as_deref(),
        Some("alice@corp.example.com")
    );
}

#[tokio::test]
async fn rich_id_token_over_http_with_client_secret_basic() -> Result<()> {
    let op = start_op(ClaimsMode::Rich, REDIRECT_URI)?;
    let http = rp_http()?;
    let client = discover(&op, &http, REDIRECT_URI).await?;
    let pending = authorize(&client);

    let browser = oidc::http_client()?;
    let redirect = login_over_http(
        &browser,
        pending.url.as_str(),
        REDIRECT_URI,
        "alice",
        PASSWORD,
    )
    .await?;
    assert!(redirect.response.status().is_redirection());
    let signed_in = finish(&op, client, &http, pending, &redirect.url).await?;

    let id = &signed_in.id;
    assert_eq!(id.subject().as_str(), "00u-alice");
    assert_eq!(id.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(id.email_verified(), Some(true));
    assert_eq!(id.preferred_username().map(|u| u.as_str()), Some("alice"));
    assert_eq!(
        id.additional_claims().groups,
        ["engineering", "palisade-admins"]
    );
    assert_eq!(
        id.additional_claims().upn.as_deref(),
        Some("alice@corp.example.com")
    );
    assert_full_userinfo(&signed_in.userinfo);
    Ok(())
}

#[tokio::test]
async fn thin_id_token_over_http_with_client_secret_post() -> Result<()> {
    let op = start_op(ClaimsMode::Thin, REDIRECT_URI)?;
    let http = rp_http()?;
    let client = discover(&op, &http, REDIRECT_URI)
        .await?
        .set_auth_type(AuthType::RequestBody);
    let pending = authorize(&client);

    let browser = oidc::http_client()?;
    // The login field also takes the email address.
    let redirect = login_over_http(
        &browser,
        pending.url.as_str(),
        REDIRECT_URI,
        "Alice@Example.com",
        PASSWORD,
    )
    .await?;
    let signed_in = finish(&op, client, &http, pending, &redirect.url).await?;

    let id = &signed_in.id;
    assert_eq!(id.subject().as_str(), "00u-alice");
    assert_eq!(id.email(), None, "thin ID token carries no email");
    assert_eq!(id.preferred_username(), None);
    assert!(id.additional_claims().groups.is_empty());
    assert_eq!(id.additional_claims().upn, None);
    assert_full_userinfo(&signed_in.userinfo);
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_refused_over_http() -> Result<()> {
    let op = start_op(ClaimsMode::Rich, REDIRECT_URI)?;
    let http = rp_http()?;
    let client = discover(&op, &http, REDIRECT_URI).await?;

    for (login, password) in [("alice", "wrong"), ("alice", ""), ("nobody", PASSWORD)] {
        let pending = authorize(&client);
        let err = login_over_http(
            &oidc::http_client()?,
            pending.url.as_str(),
            REDIRECT_URI,
            login,
            password,
        )
        .await
        .expect_err("a wrong login must be refused");
        let refused = err
            .downcast_ref::<LoginRefused>()
            .unwrap_or_else(|| panic!("expected LoginRefused, got {err:?}"));
        assert_eq!(refused.status, reqwest::StatusCode::UNAUTHORIZED);
        assert!(refused.message.contains("Invalid login or password"));
    }
    // Bob's password does not open Alice's account.
    let pending = authorize(&client);
    let err = login_over_http(
        &oidc::http_client()?,
        pending.url.as_str(),
        REDIRECT_URI,
        "alice",
        "bob's password",
    )
    .await
    .expect_err("another account's password must be refused");
    assert!(err.downcast_ref::<LoginRefused>().is_some(), "{err:?}");
    assert!(op.stderr().contains("refused login"));
    Ok(())
}

/// The whole flow on one client, as an RP test runs it: the RP's session cookie (set before the
/// flow) reaches the RP's callback along with the code.
#[tokio::test]
async fn one_cookie_jar_carries_the_rp_session_to_the_callback() -> Result<()> {
    let sink = CallbackSink::start().await?;
    let redirect_uri = sink.redirect_uri();
    let op = start_op(ClaimsMode::Rich, &redirect_uri)?;
    let http = rp_http()?;
    let client = discover(&op, &http, &redirect_uri).await?;
    let pending = authorize(&client);

    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str("rp_session=abc123; Path=/", &Url::parse(&sink.base_url())?);
    let user_agent = oidc::http_client_with_jar(jar)?;
    let redirect = login_over_http(
        &user_agent,
        pending.url.as_str(),
        &redirect_uri,
        "alice",
        PASSWORD,
    )
    .await?;
    let landed = user_agent.get(redirect.url.clone()).send().await?;
    assert_eq!(landed.status(), reqwest::StatusCode::OK);
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /callback?code="),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains("rp_session=abc123"), "{}", requests[0]);
    finish(&op, client, &http, pending, &redirect.url).await?;
    Ok(())
}

#[tokio::test]
async fn pkce_is_required() -> Result<()> {
    let op = start_op(ClaimsMode::Rich, REDIRECT_URI)?;
    let mut url = Url::parse(&format!("{}/auth", op.issuer()))?;
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("state", "s")
        .append_pair("nonce", "n");
    let resp = oidc::http_client()?.get(url).send().await?;
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .context("no redirect")?
        .to_str()?;
    let location = Url::parse(location)?;
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        oidc::query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    Ok(())
}

#[tokio::test]
async fn login_in_headless_chromium() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await? else {
        return Ok(());
    };
    let sink = CallbackSink::start().await?;
    let redirect_uri = sink.redirect_uri();
    let op = start_op(ClaimsMode::Thin, &redirect_uri)?;
    let http = rp_http()?;
    let client = discover(&op, &http, &redirect_uri).await?;

    // A wrong password leaves the browser on the form with an error.
    let pending = authorize(&client);
    browser
        .fill_login(pending.url.as_str(), "alice", "not her password")
        .await?;
    let error = browser
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(fantoccini::Locator::Id("error"))
        .await
        .context("waiting for the error")?;
    assert!(error.text().await?.contains("Invalid login or password"));
    let at = browser.client.current_url().await?;
    assert!(at.as_str().starts_with(op.issuer()), "{at}");

    // The right password reaches the callback with a code the RP can redeem.
    let pending = authorize(&client);
    let callback = browser
        .login_to_op(pending.url.as_str(), &redirect_uri, "alice", PASSWORD)
        .await?;
    let signed_in = finish(&op, client.clone(), &http, pending, &callback).await?;
    assert_eq!(signed_in.id.subject().as_str(), "00u-alice");
    assert_full_userinfo(&signed_in.userinfo);
    let page = browser.client.source().await?;
    assert!(page.contains("signed in"), "{page}");

    // The provider's session cookie now signs the browser in without the form.
    let pending = authorize(&client);
    browser.client.goto(pending.url.as_str()).await?;
    let callback = browser
        .wait_for_url_prefix(&redirect_uri, Duration::from_secs(20))
        .await?;
    finish(&op, client, &http, pending, &callback).await?;

    browser.close().await?;
    Ok(())
}
