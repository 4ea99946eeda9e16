//! Every kind of write that changes someone's policy or credentials reaches a connected agent
//! through the one change mechanism (a change record written in the write's transaction and
//! applied by the running control plane): org defaults, a group's policy, membership, a group's
//! new name, the org's and a group's API key, the org's offline settings. A role mapping is
//! recorded and applied too, and changes nothing the agent receives. A change written while no
//! control plane runs is applied by the next one to start, before any agent reconnects.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use palisade_tests::workstation::{
    secrets_key_file, set_api_key, use_helper_delivery, Workstation,
};
use palisade_tests::{backend_tests, Backend, ControlPlane};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

async fn create_user(cp: &ControlPlane, user_name: &str) -> Result<String> {
    palisade_tests::create_user(&cp.scim(), user_name).await
}

async fn create_group(cp: &ControlPlane, name: &str, members: &[&str]) -> Result<String> {
    palisade_tests::create_group(&cp.scim(), name, members).await
}

async fn set_group_policy(cp: &ControlPlane, group: &str, body: &str) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("p.json");
    std::fs::write(&f, body)?;
    cp.cli_ok(&[
        "policy",
        "set-group",
        "--org",
        "default",
        "--group",
        group,
        "--file",
        &f.display().to_string(),
    ])
    .await
}

/// `palisade-agent status --json`.
async fn status(w: &Workstation) -> Result<Value> {
    let out = w.command("status").arg("--json").output().await?;
    if !out.status.success() {
        bail!("status: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

async fn applied_version(w: &Workstation) -> Result<u64> {
    status(w)
        .await?
        .get("applied_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("no applied_version in status"))
}

/// What `palisade-agent api-key` prints (the key Claude Code would get).
async fn agent_key(w: &Workstation) -> Result<String> {
    let out = w.api_key().await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn wait_until<F, Fut>(what: &str, w: &Workstation, check: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "timed out waiting for {what}\n--- agent log ---\n{}",
        w.log()
    )
}

/// `policy show --json` of a user.
async fn show(cp: &ControlPlane, user: &str) -> Result<Value> {
    let out = cp
        .cli_ok(&[
            "policy", "show", "--org", "default", "--user", user, "--json",
        ])
        .await?;
    Ok(serde_json::from_str(&out)?)
}

async fn every_kind_of_write_reaches_the_agent(backend: Backend) -> Result<()> {
    let key = secrets_key_file()?;
    let cp = ControlPlane::start(
        backend,
        &["--secrets-key-file", &key, "--keepalive-seconds", "1"],
    )
    .await?;
    set_api_key(&cp, None, "sk-ant-org-one").await?;
    // The agent's helper prints the key, so the test reads which key arrived.
    use_helper_delivery(&cp).await?;
    let uid = create_user(&cp, "dev@example.com").await?;
    let eng = create_group(&cp, "Eng", &[&uid]).await?;
    let zeta_id = create_group(&cp, "Zeta", &[]).await?;
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "dev@example.com").await?;
    w.start()?;
    w.wait_for("the first policy", |w| w.drop_in().is_some())
        .await?;
    wait_until("the org key", &w, || async {
        Ok(agent_key(&w).await? == "sk-ant-org-one")
    })
    .await?;

    // Org defaults.
    let dir = tempfile::tempdir()?;
    let defaults = dir.path().join("defaults.json");
    std::fs::write(&defaults, r#"{"permissions": {"deny": ["WebSearch"]}}"#)?;
    let out = cp
        .cli_ok(&[
            "policy",
            "set-default",
            "--org",
            "default",
            "--file",
            &defaults.display().to_string(),
        ])
        .await?;
    assert!(out.contains("1 of 1 people have enrolled devices"), "{out}");
    w.wait_for("the default's deny", |w| {
        w.deny_rules().iter().any(|r| r == "WebSearch")
    })
    .await?;

    // A group's policy.
    set_group_policy(&cp, "Eng", r#"{"permissions": {"deny": ["Bash(curl *)"]}}"#).await?;
    w.wait_for("Eng's deny", |w| {
        w.deny_rules().iter().any(|r| r == "Bash(curl *)")
    })
    .await?;

    // Membership: a group the person is not in changes nothing for them; joining it does.
    set_group_policy(&cp, "Zeta", r#"{"permissions": {"deny": ["WebFetch"]}}"#).await?;
    let zeta = cp
        .cli_ok(&[
            "policy",
            "show",
            "--org",
            "default",
            "--user",
            "dev@example.com",
        ])
        .await?;
    assert!(!zeta.contains("WebFetch"), "{zeta}");
    cp.scim()
        .patch_ops(
            &format!("/Groups/{zeta_id}"),
            json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
        )
        .await?
        .expect_group_patch()?;
    w.wait_for("Zeta's deny after joining", |w| {
        w.deny_rules().iter().any(|r| r == "WebFetch")
    })
    .await?;

    // The org's key rotated.
    set_api_key(&cp, None, "sk-ant-org-two").await?;
    wait_until("the rotated org key", &w, || async {
        Ok(agent_key(&w).await? == "sk-ant-org-two")
    })
    .await?;

    // Group keys: the first group by name that has one wins ("Eng" before "Zeta").
    set_api_key(&cp, Some("Zeta"), "sk-ant-zeta").await?;
    wait_until("Zeta's key", &w, || async {
        Ok(agent_key(&w).await? == "sk-ant-zeta")
    })
    .await?;
    set_api_key(&cp, Some("Eng"), "sk-ant-eng").await?;
    wait_until("Eng's key", &w, || async {
        Ok(agent_key(&w).await? == "sk-ant-eng")
    })
    .await?;

    // Renaming Eng to sort after Zeta hands the key to Zeta: a rename is a change too.
    cp.scim()
        .patch_ops(
            &format!("/Groups/{eng}"),
            json!([{"op": "replace", "path": "displayName", "value": "zz-Eng"}]),
        )
        .await?
        .expect_group_patch()?;
    wait_until("Zeta's key after the rename", &w, || async {
        Ok(agent_key(&w).await? == "sk-ant-zeta")
    })
    .await?;

    // The org's offline settings.
    cp.cli_ok(&[
        "org",
        "settings",
        "--org",
        "default",
        "--offline-rule",
        "lockdown",
    ])
    .await?;
    wait_until("the lockdown offline rule", &w, || async {
        Ok(status(&w).await?["offline_rule"]
            .to_string()
            .contains("lockdown"))
    })
    .await?;

    // A role mapping is recorded and applied like any change, and the agent receives nothing
    // new from it: roles govern the admin surface, not the laptop.
    let before = applied_version(&w).await?;
    cp.cli_ok(&[
        "role-map", "set", "--org", "default", "--group", "Zeta", "--role", "security",
    ])
    .await?;
    // A later change still arrives, after the role mapping's: the agent got exactly one.
    set_group_policy(
        &cp,
        "Zeta",
        r#"{"permissions": {"deny": ["WebFetch", "Glob"]}}"#,
    )
    .await?;
    w.wait_for("the change after the role mapping", |w| {
        w.deny_rules().iter().any(|r| r == "Glob")
    })
    .await?;
    assert_eq!(applied_version(&w).await?, before + 1);
    let shown = show(&cp, "dev@example.com").await?;
    assert!(shown["roles"].to_string().contains("security"), "{shown}");
    assert_eq!(shown["pending"], json!(false), "{shown}");
    w.stop().await;
    Ok(())
}

/// A change written while no control plane runs is stored by the next one at start, for people
/// whose agents are not connected too (their stored version is what the console will show).
async fn changes_made_while_down_are_applied_at_start(backend: Backend) -> Result<()> {
    let key = secrets_key_file()?;
    let mut cp = ControlPlane::start(backend, &["--secrets-key-file", &key]).await?;
    let uid = create_user(&cp, "away@example.com").await?;
    create_group(&cp, "Ops", &[&uid]).await?;
    let w = Workstation::new()?;
    w.enroll_ok(&cp, "away@example.com").await?;
    let first = show(&cp, "away@example.com").await?;
    let v1 = first["version"]
        .as_i64()
        .ok_or_else(|| anyhow!("no version after enrollment: {first}"))?;
    cp.kill9();

    set_group_policy(&cp, "Ops", r#"{"permissions": {"deny": ["Bash"]}}"#).await?;
    let waiting = show(&cp, "away@example.com").await?;
    assert_eq!(waiting["pending"], json!(true), "{waiting}");
    assert_eq!(waiting["version"], json!(v1), "{waiting}");

    cp.restart_after_kill9().await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = show(&cp, "away@example.com").await?;
        if now["pending"] == json!(false) {
            assert_eq!(now["version"], json!(v1 + 1), "{now}");
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the change recorded while down was not applied: {now}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

backend_tests! {
    every_kind_of_write_reaches_the_agent => every_kind_of_write_reaches_the_agent_sqlite, every_kind_of_write_reaches_the_agent_postgres;
    changes_made_while_down_are_applied_at_start => changes_made_while_down_are_applied_at_start_sqlite, changes_made_while_down_are_applied_at_start_postgres;
}
