//! The admin console over HTTP, as a browser without scripts uses it (cookies, forms), with the
//! real control plane and a real agent: the one-time owner link (works once), the Identity page
//! minting a SCIM credential shown once that then provisions a person, a group policy
//! previewed and saved from its form reaching the agent's settings file, validation errors
//! beside the field that change nothing, CSRF and cross-site posts refused, and the audit page
//! and its CSV export naming the owner link and the source address.

use anyhow::{anyhow, ensure, Context, Result};
use palisade_tests::workstation::Workstation;
use palisade_tests::{backend_tests, create_group, create_user, Backend, ControlPlane};
use reqwest::StatusCode;
use serde_json::json;

/// A browser-like client: cookies kept, redirects followed, our Origin on every form.
struct Browser {
    http: reqwest::Client,
    root: String,
}

impl Browser {
    fn new(cp: &ControlPlane) -> Result<Browser> {
        Ok(Browser {
            http: reqwest::Client::builder().cookie_store(true).build()?,
            root: cp.root_url.clone(),
        })
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, String)> {
        let r = self.http.get(format!("{}{path}", self.root)).send().await?;
        Ok((r.status(), r.text().await?))
    }

    async fn page(&self, path: &str) -> Result<String> {
        let (status, body) = self.get(path).await?;
        ensure!(status == StatusCode::OK, "GET {path}: {status}\n{body}");
        Ok(body)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<(StatusCode, String)> {
        let r = self
            .http
            .post(format!("{}{path}", self.root))
            .header("origin", &self.root)
            .form(form)
            .send()
            .await?;
        Ok((r.status(), r.text().await?))
    }
}

/// The `value` of the input with this `name` (or `id`).
fn input(html: &str, attr: &str, name: &str) -> Result<String> {
    let marker = format!("{attr}=\"{name}\"");
    let at = html
        .find(&marker)
        .ok_or_else(|| anyhow!("no input {marker} in\n{html}"))?;
    let rest = &html[at..];
    let v = rest
        .find("value=\"")
        .ok_or_else(|| anyhow!("no value for {marker}"))?
        + 7;
    let end = rest[v..]
        .find('"')
        .ok_or_else(|| anyhow!("unterminated value"))?;
    Ok(rest[v..v + end]
        .replace("&#x2b;", "+")
        .replace("&#43;", "+"))
}

/// The console's login link printed by the CLI, as a path.
async fn login_link(cp: &ControlPlane) -> Result<String> {
    let out = cp
        .cli_ok(&[
            "--public-url",
            &cp.root_url,
            "admin",
            "login-link",
            "--org",
            "default",
        ])
        .await?;
    let url = out.lines().last().context("no link")?;
    url.strip_prefix(&cp.root_url)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("link {url:?} not under {}", cp.root_url))
}

async fn console_end_to_end(backend: Backend) -> Result<()> {
    let cp = ControlPlane::start(backend, &["--keepalive-seconds", "1"]).await?;
    let scim = cp.scim();
    let alice = create_user(&scim, "alice@example.com").await?;
    let eng = create_group(&scim, "Engineering", &[&alice]).await?;

    // Not signed in: sent to sign in.
    let b = Browser::new(&cp)?;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(format!("{}/console/members", cp.root_url))
        .send()
        .await?;
    ensure!(r.status().is_redirection(), "anonymous: {}", r.status());

    // The one-time owner link signs this browser in, once.
    let link = login_link(&cp).await?;
    let overview = b.page(&link).await?;
    ensure!(
        overview.contains("owner (sign-in link)") && overview.contains("id=\"users-active\">1<"),
        "{overview}"
    );
    let (status, again) = Browser::new(&cp)?.get(&link).await?;
    ensure!(
        status == StatusCode::UNAUTHORIZED && again.contains("works once"),
        "{status}"
    );
    let (status, _) = Browser::new(&cp)?
        .get("/console/login?link=pal_login_forged")
        .await?;
    ensure!(status == StatusCode::UNAUTHORIZED);

    // Identity: a SCIM credential shown once, which then provisions a person.
    let identity = b.page("/console/identity").await?;
    ensure!(
        identity.contains(&format!("{}/scim/v2", cp.root_url)),
        "the SCIM base URL is shown"
    );
    let csrf = input(&identity, "name", "csrf")?;
    let (status, created) = b
        .post(
            "/console/identity/scim-tokens",
            &[("csrf", &csrf), ("label", "Okta")],
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status}\n{created}");
    let secret = input(&created, "id", "new-secret")?;
    ensure!(secret.starts_with("pal_scim_"), "{secret}");
    let provisioned = palisade_tests::Scim::new(&cp.base_url, Some(&secret))
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bob@example.com"}),
        )
        .await?;
    provisioned.expect(201)?;
    let later = b.page("/console/identity").await?;
    ensure!(
        !later.contains(&secret) && later.contains("Okta"),
        "shown once, listed after"
    );
    // An invitation for bob, its code shown once.
    let identity = b.page("/console/identity").await?;
    let csrf = input(&identity, "name", "csrf")?;
    let (status, invited) = b
        .post(
            "/console/identity/invites",
            &[("csrf", &csrf), ("user", "bob@example.com"), ("days", "")],
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status}\n{invited}");
    let code = input(&invited, "id", "new-secret")?;
    ensure!(
        !b.page("/console/identity").await?.contains(&code),
        "the code is shown once"
    );
    let members = b.page("/console/members?q=bo").await?;
    ensure!(
        members.contains("bob@example.com") && !members.contains("alice@example.com"),
        "{members}"
    );

    // Forms without the session's CSRF token, or from another site, change nothing.
    let (status, _) = b
        .post(
            "/console/identity/scim-tokens",
            &[("csrf", "forged"), ("label", "x")],
        )
        .await?;
    ensure!(status == StatusCode::FORBIDDEN);
    let cross = b
        .http
        .post(format!("{}/console/identity/scim-tokens", cp.root_url))
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str()), ("label", "x")])
        .send()
        .await?;
    ensure!(cross.status() == StatusCode::FORBIDDEN);
    ensure!(
        !b.page("/console/identity").await?.contains(">x<"),
        "no credential named x"
    );

    // A real agent for alice.
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "alice@example.com").await?;
    w.start()?;
    w.wait_for("the first policy", |w| w.drop_in().is_some())
        .await?;

    // A group policy: an invalid one is shown with its error, a preview saves nothing, Save
    // reaches the agent.
    let path = format!("/console/policies/{eng}");
    let form = b.page(&path).await?;
    let csrf = input(&form, "name", "csrf")?;
    let (status, invalid) = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("policy", r#"{"permissions": {"deny": "WebFetch"}}"#),
                ("action", "save"),
            ],
        )
        .await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY
            && invalid.contains("id=\"policy-errors\"")
            && invalid.contains("permissions.deny"),
        "{status}\n{invalid}"
    );
    let policy = r#"{"permissions": {"deny": ["WebFetch"]}}"#;
    let (status, preview) = b
        .post(
            &path,
            &[("csrf", &csrf), ("policy", policy), ("action", "preview")],
        )
        .await?;
    ensure!(
        status == StatusCode::OK
            && preview.contains("1 of 1 people change; 1 devices receive a new version")
            && preview.contains("Preview (not saved)"),
        "{preview}"
    );
    ensure!(
        b.page(&path).await?.contains("{}"),
        "a preview saves nothing"
    );
    let (status, saved) = b
        .post(
            &path,
            &[("csrf", &csrf), ("policy", policy), ("action", "save")],
        )
        .await?;
    ensure!(
        status == StatusCode::OK && saved.contains("Saved"),
        "{saved}"
    );
    w.wait_for("the policy in the drop-in", |w| {
        w.drop_in()
            .and_then(|d| d.pointer("/permissions/deny").cloned())
            .is_some_and(|deny| deny.to_string().contains("WebFetch"))
    })
    .await?;

    // Another version, then a one-click restore of the first from the history.
    let second = r#"{"permissions": {"deny": ["Bash"]}}"#;
    let (status, _) = b
        .post(
            &path,
            &[("csrf", &csrf), ("policy", second), ("action", "save")],
        )
        .await?;
    ensure!(status == StatusCode::OK);
    let page = b.page(&path).await?;
    ensure!(
        page.contains("Restore the version of") && page.contains("owner-link:"),
        "{page}"
    );
    // The restore form carries the older version's text as it was saved.
    let restore_at = page
        .find("name=\"policy\" value=\"")
        .context("no restore form")?
        + 21;
    let end = page[restore_at..].find('"').context("unterminated")?;
    let old_text = page[restore_at..restore_at + end]
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x22;", "\"");
    ensure!(old_text.contains("WebFetch"), "{old_text}");
    let (status, _) = b
        .post(
            &path,
            &[("csrf", &csrf), ("policy", &old_text), ("action", "save")],
        )
        .await?;
    ensure!(status == StatusCode::OK);
    w.wait_for("the restored policy", |w| {
        w.drop_in()
            .and_then(|d| d.pointer("/permissions/deny").cloned())
            .is_some_and(|deny| {
                deny.to_string().contains("WebFetch") && !deny.to_string().contains("\"Bash\"")
            })
    })
    .await?;

    // The person's page explains where the rule comes from.
    let person = b.page(&format!("/console/members/{alice}")).await?;
    ensure!(
        person.contains("permissions.deny") && person.contains("Engineering"),
        "{person}"
    );

    // Settings: a bad value is refused whole.
    let settings = b.page("/console/settings").await?;
    let csrf = input(&settings, "name", "csrf")?;
    let base = [
        ("csrf", csrf.as_str()),
        ("offline_rule", "keep_last"),
        ("offline_grace_seconds", "604800"),
        ("deprovision_without_groups", "false"),
        ("trust_mdm_identity", "false"),
        ("key_delivery", "proxy"),
    ];
    let mut bad = base.to_vec();
    bad.push(("audit_retention_days", "0"));
    let (status, page) = b.post("/console/settings", &bad).await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY && page.contains("settings-error"),
        "{status}"
    );
    let mut good = base.to_vec();
    good.push(("audit_retention_days", "30"));
    let (status, page) = b.post("/console/settings", &good).await?;
    ensure!(
        status == StatusCode::OK && page.contains("value=\"30\""),
        "{status}"
    );

    // The audit trail names the owner link and the source address; the export agrees.
    let audit = b.page("/console/audit?action=group.policy.set").await?;
    ensure!(
        audit.contains("owner-link:") && audit.contains("127.0.0.1"),
        "{audit}"
    );
    let (status, csv) = b
        .get("/console/audit/export?action=group.policy.set&format=csv")
        .await?;
    ensure!(
        status == StatusCode::OK && csv.lines().count() == 4 && csv.contains("owner-link:"),
        "{csv}"
    );

    // Signing out ends the session.
    let (status, _) = b.post("/auth/logout", &[("csrf", &csrf)]).await?;
    ensure!(status == StatusCode::OK);
    let after = b
        .http
        .get(format!("{}/console/members", cp.root_url))
        .send()
        .await?;
    ensure!(
        after.url().path() == "/auth/login",
        "signed out, sent to sign in: {}",
        after.url()
    );
    w.stop().await;
    Ok(())
}

/// The Identity page's sign-in form: problems shown beside their fields with nothing stored,
/// a good configuration saved with its secret encrypted and never shown again, and a change
/// that leaves the secret out keeping it; audited with the admin as the actor.
async fn sign_in_settings_from_the_console(backend: Backend) -> Result<()> {
    let secrets = palisade_tests::workstation::secrets_key_file()?;
    let cp = ControlPlane::start(backend, &["--secrets-key-file", &secrets]).await?;
    let b = Browser::new(&cp)?;
    b.page(&login_link(&cp).await?).await?;
    let page = b.page("/console/identity").await?;
    ensure!(page.contains("id=\"oidc-missing\""), "{page}");
    let csrf = input(&page, "name", "csrf")?;

    // Plain http to a remote issuer, an empty client id and no secret: all three reported.
    let (status, page) = b
        .post(
            "/console/identity/sign-in",
            &[
                ("csrf", &csrf),
                ("issuer", "http://idp.example.com"),
                ("client_id", " "),
                ("client_secret", ""),
                ("claim", "email"),
                ("match_attribute", "userName"),
            ],
        )
        .await?;
    ensure!(
        status == StatusCode::UNPROCESSABLE_ENTITY
            && page.contains("id=\"oidc-issuer-error\"")
            && page.contains("id=\"oidc-secret-error\"")
            && page.contains("value=\"http://idp.example.com\""),
        "{status}\n{page}"
    );
    ensure!(b.page("/console/identity").await?.contains("oidc-missing"));

    let secret = "client-secret-7f3a9c";
    let good = [
        ("csrf", csrf.as_str()),
        ("issuer", "https://idp.example.com"),
        ("client_id", "palisade-console"),
        ("client_secret", secret),
        ("claim", "preferred_username"),
        ("match_attribute", "email"),
    ];
    let (status, page) = b.post("/console/identity/sign-in", &good).await?;
    ensure!(
        status == StatusCode::OK
            && page.contains("id=\"oidc-saved\"")
            && page.contains("id=\"oidc-issuer\">https://idp.example.com<")
            && !page.contains(secret),
        "{status}\n{page}"
    );
    let shown = cp.cli_ok(&["oidc", "show", "--org", "default"]).await?;
    ensure!(
        shown.contains("palisade-console") && !shown.contains(secret),
        "{shown}"
    );

    // Changing the client id without a secret keeps the stored one.
    let mut keep = good.to_vec();
    keep[2] = ("client_id", "palisade-console-2");
    keep[3] = ("client_secret", "");
    let (status, page) = b.post("/console/identity/sign-in", &keep).await?;
    ensure!(
        status == StatusCode::OK && page.contains("oidc-saved"),
        "{status}"
    );
    let audit = b.page("/console/audit?action=oidc.set").await?;
    ensure!(
        audit.matches("owner-link:").count() >= 2 && !audit.contains(secret),
        "{audit}"
    );
    Ok(())
}

backend_tests! {
    console_end_to_end => console_sqlite, console_postgres;
    sign_in_settings_from_the_console => sign_in_settings_sqlite, sign_in_settings_postgres;
}
