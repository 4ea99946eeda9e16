//! The admin console in a real headless Chromium, signed in through a real OpenID provider
//! (npm `oidc-provider`): console roles come from the IdP's groups through the role map. A
//! read-only person sees every page but no control that changes anything; an admin saves a
//! group policy from the form and a real agent's settings file changes. Each page is saved as
//! a screenshot in `target/console-screenshots/` for reviewers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use fantoccini::Locator;
use palisade_tests::browser::Browser;
use palisade_tests::oidc::{ClaimsMode, OpAccount, OpClient, OpConfig, TestOp};
use palisade_tests::workstation::{secrets_key_file, Workstation};
use palisade_tests::{create_group, Backend, ControlPlane};
use serde_json::json;

const CLIENT_ID: &str = "palisade-console";
const CLIENT_SECRET: &str = "console-secret-for-tests";

fn screenshots() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Opens `path`, checks the page rendered (its `h1`), and saves a screenshot as `name`.
async fn visit(b: &Browser, cp: &ControlPlane, path: &str, name: &str) -> Result<String> {
    b.client.goto(&format!("{}{path}", cp.root_url)).await?;
    let heading = b
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("main h1"))
        .await
        .with_context(|| format!("{path}: no heading"))?
        .text()
        .await?;
    let png = b.client.screenshot().await?;
    std::fs::write(screenshots()?.join(format!("{name}.png")), png)?;
    Ok(heading)
}

async fn has(b: &Browser, id: &str) -> bool {
    b.client.find(Locator::Id(id)).await.is_ok()
}

async fn create_person(cp: &ControlPlane, email: &str) -> Result<String> {
    let r = cp
        .scim()
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
                    "emails": [{"primary": true, "value": email}], "active": true}),
        )
        .await?;
    r.expect(201)?;
    r.id()
}

/// Signs `login` in to the console through the provider.
async fn sign_in(b: &Browser, cp: &ControlPlane, login: &str, password: &str) -> Result<()> {
    b.fill_login(&format!("{}/console", cp.root_url), login, password)
        .await?;
    b.wait_for_url_prefix(&format!("{}/console", cp.root_url), Duration::from_secs(20))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_in_the_browser() {
    palisade_tests::run_scenario("roles_in_the_browser", async {
        let Some(reader) = Browser::start_or_skip().await? else {
            return Ok(());
        };
        let key = secrets_key_file()?;
        let cp = ControlPlane::start(
            Backend::Sqlite,
            &["--secrets-key-file", &key, "--keepalive-seconds", "1"],
        )
        .await?;
        let callback = format!("{}/auth/callback", cp.root_url);
        let op = TestOp::start(
            &OpConfig::new(ClaimsMode::Rich)
                .client(OpClient::new(CLIENT_ID, CLIENT_SECRET, &callback))
                .account(OpAccount::new("00u-carol", "carol@example.com", "carol-pw"))
                .account(OpAccount::new("00u-dave", "dave@example.com", "dave-pw")),
        )?;
        let secret = tempfile::NamedTempFile::new()?;
        std::fs::write(secret.path(), CLIENT_SECRET)?;
        cp.cli_ok(&[
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
            "email",
            "--match",
            "userName",
            "--secrets-key-file",
            &key,
        ])
        .await?;
        let carol = create_person(&cp, "carol@example.com").await?;
        let dave = create_person(&cp, "dave@example.com").await?;
        let scim = cp.scim();
        create_group(&scim, "Auditors", &[&carol]).await?;
        create_group(&scim, "Platform admins", &[&dave]).await?;
        let eng = create_group(&scim, "Engineering", &[&dave]).await?;
        for (group, role) in [("Auditors", "read-only"), ("Platform admins", "admin")] {
            cp.cli_ok(&[
                "role-map", "set", "--org", "default", "--group", group, "--role", role,
            ])
            .await?;
        }

        // Read-only: every page, no control that changes anything.
        sign_in(&reader, &cp, "carol", "carol-pw").await?;
        let who = reader
            .client
            .find(Locator::Id("signed-in-as"))
            .await?
            .text()
            .await?;
        ensure!(who == "carol@example.com (read-only)", "{who}");
        for (path, name) in [
            ("/console", "overview"),
            ("/console/members", "members"),
            (&*format!("/console/members/{dave}"), "member"),
            ("/console/policies", "policies"),
            ("/console/devices", "devices"),
            ("/console/audit", "audit"),
            ("/console/identity", "identity-read-only"),
            ("/console/settings", "settings-read-only"),
        ] {
            visit(&reader, &cp, path, name).await?;
        }
        visit(
            &reader,
            &cp,
            &format!("/console/policies/{eng}"),
            "policy-read-only",
        )
        .await?;
        ensure!(
            has(&reader, "preview").await,
            "a read-only person may preview"
        );
        ensure!(!has(&reader, "save").await, "but sees no Save");
        visit(&reader, &cp, "/console/identity", "identity-read-only").await?;
        ensure!(!has(&reader, "create-scim").await && !has(&reader, "create-api-token").await);
        visit(&reader, &cp, "/console/settings", "settings-read-only").await?;
        ensure!(!has(&reader, "save-settings").await);
        reader.close().await?;

        // Admin: saves a group policy from the form; dave's agent receives it.
        let mut w = Workstation::new()?;
        w.enroll_ok(&cp, "dave@example.com").await?;
        w.start()?;
        w.wait_for("the first policy", |w| w.drop_in().is_some())
            .await?;
        let Some(admin) = Browser::start_or_skip().await? else {
            bail!("chromium went away");
        };
        sign_in(&admin, &cp, "dave", "dave-pw").await?;
        visit(&admin, &cp, &format!("/console/policies/{eng}"), "policy").await?;
        let area = admin.client.find(Locator::Id("policy")).await?;
        area.clear().await?;
        area.send_keys(r#"{"permissions": {"deny": ["WebFetch"]}}"#)
            .await?;
        admin
            .client
            .find(Locator::Id("preview"))
            .await?
            .click()
            .await?;
        let summary = admin
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("preview-summary"))
            .await?
            .text()
            .await?;
        ensure!(summary.starts_with("1 of 1 people change"), "{summary}");
        std::fs::write(
            screenshots()?.join("policy-preview.png"),
            admin.client.screenshot().await?,
        )?;
        admin
            .client
            .find(Locator::Id("save"))
            .await?
            .click()
            .await?;
        admin
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("preview-result"))
            .await?;
        w.wait_for("the saved policy in the drop-in", |w| {
            w.drop_in()
                .and_then(|d| d.pointer("/permissions/deny").cloned())
                .is_some_and(|deny| deny.to_string().contains("WebFetch"))
        })
        .await?;
        visit(&admin, &cp, "/console/identity", "identity").await?;
        ensure!(has(&admin, "create-scim").await);
        let issuer = admin
            .client
            .find(Locator::Id("oidc-issuer"))
            .await?
            .text()
            .await?;
        ensure!(
            issuer == op.issuer(),
            "the sign-in settings are shown: {issuer}"
        );
        let audit = visit(
            &admin,
            &cp,
            "/console/audit?action=group.policy.set",
            "audit-filtered",
        )
        .await?;
        ensure!(audit == "Audit trail");
        let actor = admin
            .client
            .find(Locator::Css("td.actor"))
            .await?
            .text()
            .await?;
        ensure!(actor == "person:dave@example.com", "{actor}");
        visit(&admin, &cp, "/console/me", "my-devices").await?;

        // A phone's width: every page fits (wide tables scroll inside their own box) and its
        // controls stay reachable.
        admin.client.set_window_size(390, 844).await?;
        for (path, name) in [
            ("/console", "phone-overview"),
            ("/console/members", "phone-members"),
            (&*format!("/console/policies/{eng}"), "phone-policy"),
            ("/console/devices", "phone-devices"),
            ("/console/audit", "phone-audit"),
            ("/console/identity", "phone-identity"),
            ("/console/settings", "phone-settings"),
        ] {
            visit(&admin, &cp, path, name).await?;
            let widths = admin
                .client
                .execute(
                    "return [document.documentElement.scrollWidth, window.innerWidth];",
                    vec![],
                )
                .await?;
            let (page, window) = (widths[0].as_u64(), widths[1].as_u64());
            ensure!(
                page.is_some() && page <= window,
                "{path} overflows a phone's width: {widths}"
            );
        }
        admin.close().await?;
        w.stop().await;
        Ok(())
    })
    .await
}
