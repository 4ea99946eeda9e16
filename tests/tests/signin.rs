//! End-to-end sign-in: the real control plane as the OpenID Connect relying party of a real
//! OpenID provider (npm `oidc-provider`), the real agent waiting in `enroll --login`, and the
//! person completing the pages over HTTP (following the forms) and in headless Chromium. Both
//! provider shapes: email in the ID token (rich), and a thin ID token with email only from
//! userinfo (Okta's org authorization server). Plus: an MDM-enrolled device confirmed by its
//! person, a sign-in that matches no active person, and the same-origin and CSRF rules.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use palisade_tests::browser::Browser;
use palisade_tests::oidc::{
    self, login_over_http, ClaimsMode, OpAccount, OpClient, OpConfig, TestOp,
};
use palisade_tests::workstation::{secrets_key_file, set_org_api_key, Workstation, SECRETS_KEY};
use palisade_tests::{backend_tests, Backend, ControlPlane};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const CLIENT_ID: &str = "palisade-test";
const CLIENT_SECRET: &str = "s3cret-for-tests";

/// A control plane with sign-in connected to a fresh test provider.
struct Setup {
    cp: ControlPlane,
    /// Kept alive for the test (the provider stops on drop).
    _op: TestOp,
}

async fn setup(
    backend: Backend,
    mode: ClaimsMode,
    claim: &str,
    accounts: &[OpAccount],
) -> Result<Setup> {
    let key = secrets_key_file()?;
    let cp = ControlPlane::start(backend, &["--secrets-key-file", &key]).await?;
    let callback = format!("{}/auth/callback", cp.root_url);
    let mut config = OpConfig::new(mode).client(OpClient::new(CLIENT_ID, CLIENT_SECRET, &callback));
    for a in accounts {
        config = config.account(a.clone());
    }
    let op = TestOp::start(&config)?;
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), CLIENT_SECRET)?;
    let out = cp
        .cli(&[
            "--public-url",
            &cp.root_url,
            "oidc",
            "set",
            "--org",
            "default",
            "--issuer",
            op.issuer(),
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            &secret.path().display().to_string(),
            "--claim",
            claim,
            "--match",
            "userName",
            "--secrets-key-file",
            &key,
        ])
        .await?;
    if !out.status.success() {
        bail!("oidc set: {}", String::from_utf8_lossy(&out.stderr));
    }
    let shown = cp
        .cli_ok(&[
            "--public-url",
            &cp.root_url,
            "oidc",
            "show",
            "--org",
            "default",
        ])
        .await?;
    assert!(
        shown.lines().any(|l| l == callback),
        "oidc show prints the redirect URL on its own line: {shown}"
    );
    assert!(!shown.contains(CLIENT_SECRET), "the secret is never shown");
    let stored = cp.db.url.clone();
    let _ = stored;
    Ok(Setup { cp, _op: op })
}

async fn create_user(cp: &ControlPlane, user_name: &str) -> Result<String> {
    let r = cp
        .scim()
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name,
                    "emails": [{"primary": true, "value": user_name}], "active": true}),
        )
        .await?;
    r.expect(201)?;
    r.body["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no id"))
}

/// `value="…"` of the input named `name` in a page.
fn input_value(html: &str, name: &str) -> Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| anyhow!("no input {name} in page:\n{html}"))?
        + marker.len();
    let end = html[start..]
        .find('"')
        .ok_or_else(|| anyhow!("unterminated value"))?;
    Ok(html[start..start + end].to_string())
}

/// A running `enroll --login`, with the link it printed.
struct WaitingAgent {
    child: tokio::process::Child,
    link: String,
}

async fn start_login(w: &Workstation, cp: &ControlPlane) -> Result<WaitingAgent> {
    let mut child = w
        .command("enroll")
        .args(["--server", &cp.grpc_url, "--login", "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let link = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("http") && line.contains("/enroll/device?code=") {
                return anyhow::Ok(line);
            }
        }
        bail!("enroll --login ended without printing a link")
    })
    .await
    .context("waiting for the sign-in link")??;
    // Keep draining stdout so the agent never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(WaitingAgent { child, link })
}

impl WaitingAgent {
    async fn finish(mut self) -> Result<std::process::ExitStatus> {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the agent did not finish after the confirmation")??;
        Ok(status)
    }
}

/// Follows the pages over HTTP like a browser would: code form, IdP sign-in, confirmation.
/// Returns the final page's status and body.
async fn confirm_over_http(
    s: &Setup,
    link: &str,
    login: &str,
    password: &str,
    decision: &str,
) -> Result<(u16, String)> {
    let cp = &s.cp;
    let ua = oidc::http_client()?;
    let form = ua.get(link).send().await?;
    assert_eq!(form.status(), 200);
    let csp = form
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "CSP: {csp}"
    );
    assert!(
        form.headers().get("set-cookie").is_none(),
        "the anonymous code page stores no session"
    );
    let html = form.text().await?;
    let code = input_value(&html, "code")?;
    let cross = ua
        .post(format!("{}/enroll/device", cp.root_url))
        .header("origin", "http://evil.example")
        .form(&[("code", code.as_str())])
        .send()
        .await?;
    assert_eq!(
        cross.status(),
        403,
        "a cross-site code submission is refused"
    );
    let submitted = ua
        .post(format!("{}/enroll/device", cp.root_url))
        .header("origin", &cp.root_url)
        .form(&[("code", code.as_str())])
        .send()
        .await?;
    if !submitted.status().is_redirection() {
        bail!(
            "code submission: {} {}",
            submitted.status(),
            submitted.text().await?
        );
    }
    let location = submitted
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("no redirect after the code"))?
        .to_string();
    let callback_prefix = format!("{}/auth/callback", cp.root_url);
    let start = format!("{}{location}", cp.root_url);
    let cb = login_over_http(&ua, &start, &callback_prefix, login, password).await?;
    let after = ua.get(cb.url.clone()).send().await?;
    if !after.status().is_redirection() {
        let status = after.status().as_u16();
        return Ok((status, after.text().await?));
    }
    let confirm = ua
        .get(format!("{}/enroll/device/confirm", cp.root_url))
        .send()
        .await?;
    assert_eq!(confirm.status(), 200);
    let page = confirm.text().await?;
    assert!(page.contains(&code), "the confirmation shows the code");
    assert!(
        page.contains("id=\"hostname\""),
        "the confirmation shows the device"
    );
    let csrf = input_value(&page, "csrf")?;
    let grant = input_value(&page, "grant")?;
    // A cross-site POST and a POST without the session's token are refused.
    let cross = ua
        .post(format!("{}/enroll/device/confirm", cp.root_url))
        .header("origin", "http://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("grant", grant.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await?;
    assert_eq!(cross.status(), 403, "cross-origin POST refused");
    let forged = ua
        .post(format!("{}/enroll/device/confirm", cp.root_url))
        .header("origin", &cp.root_url)
        .form(&[
            ("csrf", "forged"),
            ("grant", grant.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await?;
    assert_eq!(forged.status(), 403, "POST without the CSRF token refused");
    let decided = ua
        .post(format!("{}/enroll/device/confirm", cp.root_url))
        .header("origin", &cp.root_url)
        .form(&[
            ("csrf", csrf.as_str()),
            ("grant", grant.as_str()),
            ("decision", decision),
        ])
        .send()
        .await?;
    let status = decided.status().as_u16();
    Ok((status, decided.text().await?))
}

async fn device_list(cp: &ControlPlane) -> Result<Vec<Value>> {
    cp.cli_ok(&["device", "list", "--org", "default", "--json"])
        .await?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// Interactive enrollment over HTTP, in both provider shapes: a verified device with the key.
async fn interactive_enrollment(backend: Backend, mode: ClaimsMode) -> Result<()> {
    let alice = OpAccount::new("00u-alice", "alice@example.com", "alice-pw").groups(&["eng"]);
    let s = setup(backend, mode, "email", &[alice]).await?;
    create_user(&s.cp, "alice@example.com").await?;
    set_org_api_key(&s.cp, "sk-ant-signin-key").await?;
    let mut w = Workstation::new()?;
    let agent = start_login(&w, &s.cp).await?;
    let (status, page) = confirm_over_http(&s, &agent.link, "alice", "alice-pw", "approve").await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Device confirmed"), "{page}");
    let exit = agent.finish().await?;
    assert!(exit.success(), "enroll --login exits 0 once confirmed");
    let d = device_list(&s.cp).await?;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["identity"], "verified");
    assert_eq!(d[0]["method"], "sign-in");
    assert_eq!(d[0]["userName"], "alice@example.com");
    w.start()?;
    w.wait_for("the key for a signed-in device", |w| {
        w.state().join("api-key").exists()
    })
    .await?;
    let audit =
        s.cp.cli_ok(&["audit", "--org", "default", "--json"])
            .await?;
    for action in ["\"signin\"", "device.authorize", "device.enroll"] {
        assert!(audit.contains(action), "audit has {action}: {audit}");
    }
    assert!(
        audit.contains("\"method\":\"sign-in\""),
        "the method is audited"
    );
    let _ = SECRETS_KEY;
    Ok(())
}

async fn interactive_enrollment_rich(backend: Backend) -> Result<()> {
    interactive_enrollment(backend, ClaimsMode::Rich).await
}

async fn interactive_enrollment_thin(backend: Backend) -> Result<()> {
    interactive_enrollment(backend, ClaimsMode::Thin).await
}

/// A sign-in whose claims match no active person is refused with a page that says so and is
/// audited; a deprovisioned person cannot enroll by signing in either.
async fn unmatched_and_deprovisioned_are_refused(backend: Backend) -> Result<()> {
    let stranger = OpAccount::new("00u-stranger", "stranger@example.com", "pw1");
    let leaver = OpAccount::new("00u-leaver", "leaver@example.com", "pw2");
    let ungrouped = OpAccount::new("00u-ungrouped", "ungrouped@example.com", "pw3");
    let s = setup(
        backend,
        ClaimsMode::Rich,
        "email",
        &[stranger, leaver, ungrouped],
    )
    .await?;
    let leaver_id = create_user(&s.cp, "leaver@example.com").await?;
    // Deprovisioned by removal from the last group: the user row stays active.
    s.cp.cli_ok(&[
        "org",
        "settings",
        "--org",
        "default",
        "--deprovision-without-groups",
        "true",
    ])
    .await?;
    let ungrouped_id = create_user(&s.cp, "ungrouped@example.com").await?;
    let g = s
        .cp
        .scim()
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng",
                    "members": [{"value": ungrouped_id}, {"value": leaver_id}]}),
        )
        .await?;
    g.expect(201)?;
    let gid = g.body["id"].as_str().unwrap_or_default().to_string();
    s.cp.scim()
        .patch_ops(
            &format!("/Groups/{gid}"),
            json!([{"op": "remove", "path": format!("members[value eq \"{ungrouped_id}\"]")}]),
        )
        .await?
        .expect_group_patch()?;
    s.cp.scim()
        .patch_ops(
            &format!("/Users/{leaver_id}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await?
        .expect(200)?;
    for (login, password) in [("stranger", "pw1"), ("leaver", "pw2"), ("ungrouped", "pw3")] {
        let w = Workstation::new()?;
        let mut agent = start_login(&w, &s.cp).await?;
        let (status, page) = confirm_over_http(&s, &agent.link, login, password, "approve").await?;
        assert_eq!(status, 403, "{login}: {page}");
        assert!(page.contains("cannot use Palisade"), "{login}: {page}");
        let _ = agent.child.kill().await;
        assert!(!w.state().join("device.json").exists());
    }
    assert!(device_list(&s.cp).await?.is_empty());
    let audit =
        s.cp.cli_ok(&["audit", "--org", "default", "--json"])
            .await?;
    assert!(audit.matches("signin.refused").count() >= 3, "{audit}");
    Ok(())
}

/// An MDM-enrolled device: policy but no key; its person signs in on the linked page and
/// confirms; the key arrives. Another person cannot confirm it.
async fn mdm_device_confirmed_by_its_person(backend: Backend) -> Result<()> {
    let alice = OpAccount::new("00u-alice", "alice@example.com", "alice-pw");
    let mallory = OpAccount::new("00u-mallory", "mallory@example.com", "mal-pw");
    let s = setup(backend, ClaimsMode::Thin, "email", &[alice, mallory]).await?;
    create_user(&s.cp, "alice@example.com").await?;
    create_user(&s.cp, "mallory@example.com").await?;
    set_org_api_key(&s.cp, "sk-ant-mdm-confirm").await?;
    let token =
        s.cp.enroll_token
            .clone()
            .ok_or_else(|| anyhow!("no token"))?;
    let mut w = Workstation::new()?;
    let out = w.enroll(&s.cp, &token, "alice@example.com").await?;
    assert!(out.status.success());
    w.start()?;
    let mut link = String::new();
    w.wait_for("the confirmation link", |w| {
        w.drop_in()
            .and_then(|d| d["companyAnnouncements"][0].as_str().map(str::to_string))
            .is_some()
    })
    .await?;
    if let Some(text) = w
        .drop_in()
        .and_then(|d| d["companyAnnouncements"][0].as_str().map(str::to_string))
    {
        link = text
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
    }
    assert!(link.starts_with(&s.cp.root_url), "link: {link}");
    let callback_prefix = format!("{}/auth/callback", s.cp.root_url);

    // Mallory signs in and opens Alice's device: nothing to confirm.
    let ua = oidc::http_client()?;
    let cb = login_over_http(&ua, &link, &callback_prefix, "mallory", "mal-pw").await?;
    let back = ua.get(cb.url.clone()).send().await?;
    assert!(back.status().is_redirection());
    let page = ua.get(&link).send().await?;
    assert_eq!(page.status(), 404, "another person's device is not offered");

    // Alice confirms.
    let ua = oidc::http_client()?;
    let cb = login_over_http(&ua, &link, &callback_prefix, "alice", "alice-pw").await?;
    ua.get(cb.url.clone()).send().await?;
    let page = ua.get(&link).send().await?;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    let csrf = input_value(&html, "csrf")?;
    let device = input_value(&html, "device")?;
    let done = ua
        .post(format!("{}/enroll/device/verify", s.cp.root_url))
        .header("origin", &s.cp.root_url)
        .form(&[
            ("csrf", csrf.as_str()),
            ("device", device.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await?;
    assert_eq!(done.status(), 200, "{}", done.text().await?);
    w.wait_for("the key after confirmation", |w| {
        w.state().join("api-key").exists()
            && w.drop_in()
                .is_some_and(|d| d.get("companyAnnouncements").is_none())
    })
    .await?;
    assert_eq!(device_list(&s.cp).await?[0]["identity"], "verified");
    Ok(())
}

/// The whole flow in a real headless Chromium: code page, IdP sign-in, confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_enrollment_in_chromium() {
    palisade_tests::run_scenario("interactive_enrollment_in_chromium", async {
        let Some(browser) = Browser::start_or_skip().await? else {
            return Ok(());
        };
        let alice = OpAccount::new("00u-alice", "alice@example.com", "alice-pw");
        let s = setup(Backend::Sqlite, ClaimsMode::Rich, "email", &[alice]).await?;
        create_user(&s.cp, "alice@example.com").await?;
        let w = Workstation::new()?;
        let agent = start_login(&w, &s.cp).await?;
        let c = &browser.client;
        c.goto(&agent.link).await?;
        c.find(fantoccini::Locator::Id("continue"))
            .await?
            .click()
            .await?;
        if let Err(e) = browser
            .fill_login_on_current_page("alice", "alice-pw")
            .await
        {
            let url = c.current_url().await?;
            let source = c.source().await.unwrap_or_default();
            bail!("{e:#}: the browser is at {url}:\n{source}");
        }
        browser
            .wait_for_url_prefix(
                &format!("{}/enroll/device/confirm", s.cp.root_url),
                Duration::from_secs(20),
            )
            .await?;
        let shown = c
            .find(fantoccini::Locator::Id("person"))
            .await?
            .text()
            .await?;
        assert_eq!(shown, "alice@example.com");
        c.find(fantoccini::Locator::Id("approve"))
            .await?
            .click()
            .await?;
        let heading = c
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(fantoccini::Locator::Id("heading"))
            .await?
            .text()
            .await?;
        assert_eq!(heading, "Device confirmed");
        assert!(agent.finish().await?.success());
        assert_eq!(device_list(&s.cp).await?[0]["identity"], "verified");
        browser.close().await?;
        Ok(())
    })
    .await
}

backend_tests! {
    interactive_enrollment_rich => interactive_enrollment_rich_sqlite, interactive_enrollment_rich_postgres;
    interactive_enrollment_thin => interactive_enrollment_thin_sqlite, interactive_enrollment_thin_postgres;
    unmatched_and_deprovisioned_are_refused => unmatched_and_deprovisioned_are_refused_sqlite, unmatched_and_deprovisioned_are_refused_postgres;
    mdm_device_confirmed_by_its_person => mdm_device_confirmed_by_its_person_sqlite, mdm_device_confirmed_by_its_person_postgres;
}
