//! End-to-end: the real control plane and real `palisade-agent` processes. SCIM calls in Okta's
//! and Entra's shapes and CLI policy changes end up as Claude Code drop-in JSON on disk; a
//! change reaches every device of a user; deprovisioning wipes; tampering is undone; restarts
//! and offline agents converge; bad enrollments and policies are refused with clear errors.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use palisade_tests::workstation::{
    secrets_key_file, set_org_api_key, use_helper_delivery, Workstation,
};
use palisade_tests::{backend_tests, Backend, ControlPlane};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn user_body(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Dev", "familyName": "Eloper"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Dev Eloper",
        "locale": "en-US",
        "externalId": format!("00u{}", user_name.len()),
        "groups": [],
        "password": "not-stored",
        "active": true
    })
}

async fn create_user(cp: &ControlPlane, user_name: &str) -> Result<String> {
    let r = cp.scim().post("/Users", &user_body(user_name)).await?;
    r.expect(201)?;
    r.body["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no id"))
}

async fn create_group(cp: &ControlPlane, name: &str, members: &[&str]) -> Result<String> {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let r = cp
        .scim()
        .post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members}))
        .await?;
    r.expect(201)?;
    r.body["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no id"))
}

fn write_policy(dir: &Path, name: &str, body: &str) -> Result<String> {
    let p = dir.join(name);
    std::fs::write(&p, body)?;
    Ok(p.display().to_string())
}

/// A file holding the test secrets key (shared by every test of this process).
async fn start_cp(backend: Backend, extra: &[&str]) -> Result<ControlPlane> {
    let key = secrets_key_file()?;
    let mut args: Vec<&str> = vec!["--secrets-key-file", &key];
    args.extend_from_slice(extra);
    ControlPlane::start(backend, &args).await
}

/// Okta-shaped provisioning plus a group policy reaches two devices of the same user; a later
/// policy change and a membership removal reach both too.
async fn group_policy_reaches_every_device(backend: Backend) -> Result<()> {
    let cp = start_cp(backend, &["--keepalive-seconds", "1"]).await?;
    let files = tempfile::tempdir()?;
    let uid = create_user(&cp, "dev@example.com").await?;
    let gid = create_group(&cp, "Contractors", &[&uid]).await?;
    let f = write_policy(
        files.path(),
        "contractors.json",
        r#"{"blocked_tools": ["Bash"], "security_level": "strict"}"#,
    )?;
    cp.cli_ok(&[
        "policy",
        "set-group",
        "--org",
        "default",
        "--group",
        "Contractors",
        "--file",
        &f,
    ])
    .await?;

    let mut a = Workstation::new()?;
    let mut b = Workstation::new()?;
    a.enroll_ok(&cp, "DEV@example.com").await?;
    b.enroll_ok(&cp, "dev@example.com").await?;
    a.start()?;
    b.start()?;
    for w in [&a, &b] {
        w.wait_for("Bash denied", |w| {
            w.deny_rules().iter().any(|r| r == "Bash")
        })
        .await?;
        let d = w.drop_in().ok_or_else(|| anyhow!("no drop-in"))?;
        assert_eq!(
            d.pointer("/permissions/disableBypassPermissionsMode"),
            Some(&json!("disable")),
            "strict level keys: {d}"
        );
        assert_eq!(
            d.pointer("/allowManagedPermissionRulesOnly"),
            Some(&json!(true)),
            "strict level keys: {d}"
        );
    }

    // A TOML policy change reaches both devices.
    let f2 = write_policy(files.path(), "contractors.toml", "blocked_tools = [\"Bash\", \"WebFetch\"]\nsecurity_level = \"paranoid\"\nblocked_write_paths = [\"/etc\"]\n")?;
    cp.cli_ok(&[
        "policy",
        "set-group",
        "--org",
        "default",
        "--group",
        "Contractors",
        "--file",
        &f2,
    ])
    .await?;
    for w in [&a, &b] {
        w.wait_for("WebFetch denied and /etc protected", |w| {
            let rules = w.deny_rules();
            rules.iter().any(|r| r == "WebFetch") && rules.iter().any(|r| r == "Edit(//etc/**)")
        })
        .await?;
        let d = w.drop_in().ok_or_else(|| anyhow!("no drop-in"))?;
        assert_eq!(
            d.pointer("/sandbox/enabled"),
            Some(&json!(true)),
            "paranoid keys: {d}"
        );
        assert!(
            !d.to_string().contains("Write(/"),
            "no ignored Write(path) rules: {d}"
        );
    }

    // Okta removes the member by value path: the group's restrictions leave both devices.
    cp.scim()
        .patch_ops(
            &format!("/Groups/{gid}"),
            json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
        )
        .await?
        .expect(200)?;
    for w in [&a, &b] {
        w.wait_for("Bash allowed again", |w| {
            w.drop_in().is_some() && !w.deny_rules().iter().any(|r| r == "Bash")
        })
        .await?;
    }
    let explain = cp
        .cli_ok(&[
            "policy",
            "show",
            "--org",
            "default",
            "--user",
            "dev@example.com",
            "--explain",
        ])
        .await?;
    assert!(explain.contains("dev@example.com"), "{explain}");
    a.stop().await;
    b.stop().await;
    Ok(())
}

/// Entra-shaped deactivation wipes the API key and Claude Code's login, locks Claude Code down,
/// and makes `palisade-agent api-key` fail; an offline device learns it when it reconnects.
async fn deprovisioning_wipes(backend: Backend) -> Result<()> {
    let cp = start_cp(backend, &["--keepalive-seconds", "1"]).await?;
    let uid = create_user(&cp, "leaver@example.com").await?;
    let _other = create_user(&cp, "stayer@example.com").await?;
    // Without a secrets key the API key cannot be stored: a clear error, nothing written.
    let out = cp.cli(&["api-key", "set", "--org", "default"]).await?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("secrets-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The CLI reads the key from stdin.
    set_org_api_key(&cp, "sk-ant-test-key-123").await?;
    // This test follows the key itself to the laptop and out (`key_custody.rs`: the relay).
    use_helper_delivery(&cp).await?;

    let mut online = Workstation::new()?;
    let mut offline = Workstation::new()?;
    online.enroll_ok(&cp, "leaver@example.com").await?;
    offline.enroll_ok(&cp, "leaver@example.com").await?;
    for w in [&online, &offline] {
        std::fs::write(
            w.claude().join(".credentials.json"),
            r#"{"claudeAiOauth":{"accessToken":"x"}}"#,
        )?;
    }
    online.start()?;
    offline.start()?;
    for w in [&online, &offline] {
        w.wait_for("API key delivered", |w| {
            w.drop_in().is_some() && w.state().join("api-key").exists()
        })
        .await?;
        let key = w.api_key().await?;
        assert!(
            key.status.success(),
            "api-key before deprovisioning: {}",
            String::from_utf8_lossy(&key.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&key.stdout).trim(),
            "sk-ant-test-key-123"
        );
        let d = w.drop_in().ok_or_else(|| anyhow!("no drop-in"))?;
        assert!(
            d["apiKeyHelper"]
                .as_str()
                .is_some_and(|h| h.contains("api-key")),
            "apiKeyHelper set: {d}"
        );
    }
    offline.stop().await;

    // Entra (legacy style): capitalised op, string boolean.
    cp.scim()
        .patch_ops(
            &format!("/Users/{uid}"),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await?
        .expect(200)?;
    online
        .wait_for("wipe", |w| {
            !w.state().join("api-key").exists()
                && !w.claude().join(".credentials.json").exists()
                && w.deny_rules().iter().any(|r| r == "*")
        })
        .await?;
    let key = online.api_key().await?;
    assert!(!key.status.success(), "api-key must fail after the wipe");
    assert!(
        key.stdout.is_empty(),
        "api-key prints nothing after the wipe"
    );
    let lock = online.deny_rules();
    // The lockdown denies every tool (`*`) and every MCP tool; the real client then offers
    // none (tests/tests/claude_code_policy.rs).
    for tool in ["*", "mcp__*"] {
        assert!(
            lock.iter().any(|r| r == tool),
            "lockdown denies {tool}: {lock:?}"
        );
    }

    // The device that was offline learns it at reconnection: its credential is refused.
    offline.start()?;
    offline
        .wait_for("offline device wiped at reconnection", |w| {
            !w.state().join("api-key").exists()
                && !w.claude().join(".credentials.json").exists()
                && w.deny_rules().iter().any(|r| r == "*")
        })
        .await?;
    assert!(!offline.api_key().await?.status.success());

    // The audit trail records the deactivation with the revoked devices, the connected device's
    // wipe report and the offline device's refused reconnection.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let trail = cp
            .cli_ok(&[
                "audit",
                "--org",
                "default",
                "--user",
                "leaver@example.com",
                "--json",
            ])
            .await?;
        let events: Vec<Value> = trail
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let deactivated = events.iter().find(|e| e["action"] == "user.deactivate");
        let wipes = events
            .iter()
            .filter(|e| e["action"] == "device.wipe")
            .count();
        let refused = events
            .iter()
            .filter(|e| e["action"] == "device.refused")
            .count();
        let enrolls = events
            .iter()
            .filter(|e| e["action"] == "device.enroll")
            .count();
        if let Some(d) = deactivated {
            assert_eq!(
                d["detail"]["devicesRevoked"].as_array().map(Vec::len),
                Some(2),
                "both devices revoked in the deactivation: {d}"
            );
            assert_eq!(enrolls, 2, "{trail}");
            // The connected device reports its wipe over the stream; the one that was offline
            // is refused at reconnection, which the server records.
            if wipes >= 1 && refused >= 1 {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("audit trail incomplete:\n{trail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    online.stop().await;
    offline.stop().await;
    Ok(())
}

/// Editing or deleting the drop-in is undone.
async fn tampering_is_restored(backend: Backend) -> Result<()> {
    let cp = start_cp(backend, &[]).await?;
    let files = tempfile::tempdir()?;
    create_user(&cp, "t@example.com").await?;
    let f = write_policy(
        files.path(),
        "d.json",
        r#"{"blocked_tools": ["WebSearch"]}"#,
    )?;
    cp.cli_ok(&["policy", "set-default", "--org", "default", "--file", &f])
        .await?;
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "t@example.com").await?;
    w.start()?;
    w.wait_for("policy applied", |w| {
        w.deny_rules().iter().any(|r| r == "WebSearch")
    })
    .await?;
    let good = std::fs::read(w.drop_in_path())?;
    std::fs::write(
        w.drop_in_path(),
        b"{\"permissions\": {\"allow\": [\"Bash\"]}}",
    )?;
    w.wait_for("restored after edit", |w| {
        std::fs::read(w.drop_in_path()).ok().as_deref() == Some(&good[..])
    })
    .await?;
    std::fs::remove_file(w.drop_in_path())?;
    w.wait_for("restored after delete", |w| {
        std::fs::read(w.drop_in_path()).ok().as_deref() == Some(&good[..])
    })
    .await?;
    w.stop().await;
    Ok(())
}

/// An agent offline during a change, and a control plane restarted (kill -9), both converge.
async fn restarts_and_offline_agents_converge(backend: Backend) -> Result<()> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let grpc = format!("127.0.0.1:{port}");
    let mut cp = start_cp(backend, &["--grpc-addr", &grpc, "--keepalive-seconds", "1"]).await?;
    let files = tempfile::tempdir()?;
    create_user(&cp, "c@example.com").await?;
    let mut w = Workstation::new()?;
    w.enroll_ok(&cp, "c@example.com").await?;
    w.start()?;
    w.wait_for("first policy", |w| w.drop_in().is_some())
        .await?;

    // Offline during a change.
    w.stop().await;
    let f = write_policy(
        files.path(),
        "a.json",
        r#"{"blocked_tools": ["NotebookEdit"]}"#,
    )?;
    cp.cli_ok(&["policy", "set-default", "--org", "default", "--file", &f])
        .await?;
    w.start()?;
    w.wait_for("change made while offline", |w| {
        w.deny_rules().iter().any(|r| r == "NotebookEdit")
    })
    .await?;

    // The control plane dies; a change is made meanwhile; it comes back on the same port.
    cp.kill9();
    let f2 = write_policy(
        files.path(),
        "b.json",
        r#"{"blocked_tools": ["NotebookEdit", "WebSearch"]}"#,
    )?;
    cp.cli_ok(&["policy", "set-default", "--org", "default", "--file", &f2])
        .await?;
    cp.restart_after_kill9().await?;
    w.wait_for("change made while the control plane was down", |w| {
        w.deny_rules().iter().any(|r| r == "WebSearch")
    })
    .await?;

    // And a change after the restart, through the running control plane's catch-up.
    let f3 = write_policy(files.path(), "c.json", r#"{"blocked_tools": ["Glob"]}"#)?;
    cp.cli_ok(&["policy", "set-default", "--org", "default", "--file", &f3])
        .await?;
    w.wait_for("change after restart", |w| {
        let r = w.deny_rules();
        r.iter().any(|x| x == "Glob") && !r.iter().any(|x| x == "WebSearch")
    })
    .await?;
    w.stop().await;
    Ok(())
}

/// Bad enrollment tokens, unknown and inactive users, revoked tokens and malformed policies
/// get clear errors and change nothing.
async fn bad_input_is_refused(backend: Backend) -> Result<()> {
    let cp = start_cp(backend, &[]).await?;
    let files = tempfile::tempdir()?;
    let uid = create_user(&cp, "ok@example.com").await?;
    let w = Workstation::new()?;

    // Every refusal — bad token, unknown user, inactive user — says the same thing, so
    // nothing can be enumerated; the reason goes to the log and the audit trail only.
    let refusal = |out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        err.lines()
            .find(|l| l.contains("enrollment refused"))
            .map(str::to_string)
            .unwrap_or(err)
    };
    let out = w
        .enroll(&cp, "pal_enroll_not-a-real-token", "ok@example.com")
        .await?;
    assert!(!out.status.success());
    let bad_token = refusal(&out);
    assert!(bad_token.contains("enrollment refused"), "{bad_token}");
    assert!(!w.state().join("device.json").exists());

    let token = cp
        .enroll_token
        .clone()
        .ok_or_else(|| anyhow!("no enrollment token"))?;
    let out = w.enroll(&cp, &token, "nobody@example.com").await?;
    assert!(!out.status.success());
    let unknown = refusal(&out);
    assert!(
        !unknown.contains("nobody@example.com"),
        "unknown user named: {unknown}"
    );
    assert_eq!(unknown, bad_token, "same answer for an unknown user");

    cp.scim()
        .patch_ops(
            &format!("/Users/{uid}"),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .await?
        .expect(200)?;
    let out = w.enroll(&cp, &token, "ok@example.com").await?;
    assert!(!out.status.success());
    assert_eq!(refusal(&out), bad_token, "same answer for an inactive user");
    let audit = cp.cli_ok(&["audit", "--org", "default", "--json"]).await?;
    assert!(
        audit.contains("device.enroll.refused") && audit.contains("is not active"),
        "the reason is audited: {audit}"
    );

    // A revoked or expired enrollment token.
    let t2 = cp
        .cli_ok(&[
            "enroll-token",
            "create",
            "--org",
            "default",
            "--expires-in",
            "30d",
        ])
        .await?;
    let t2 = t2.trim().to_string();
    assert!(t2.starts_with("pal_enroll_"));
    let listed = cp
        .cli_ok(&["enroll-token", "list", "--org", "default"])
        .await?;
    assert!(!listed.contains(&t2), "list never shows secrets");
    cp.cli_ok(&["enroll-token", "revoke", "--org", "default", &t2[..18]])
        .await?;
    create_user(&cp, "new@example.com").await?;
    let out = w.enroll(&cp, &t2, "new@example.com").await?;
    assert!(!out.status.success(), "revoked enrollment token refused");

    // Malformed policies: every problem reported, nothing stored.
    let bad = write_policy(
        files.path(),
        "bad.json",
        r#"{"blocked_tools": ["Bsh"], "security_level": "high", "blocked_write_paths": ["src/x"]}"#,
    )?;
    let out = cp
        .cli(&["policy", "set-default", "--org", "default", "--file", &bad])
        .await?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["Bsh", "high", "src/x"] {
        assert!(err.contains(needle), "error mentions {needle}: {err}");
    }
    let shown = cp
        .cli_ok(&[
            "policy",
            "show",
            "--org",
            "default",
            "--user",
            "new@example.com",
            "--json",
        ])
        .await?;
    let v: Value = serde_json::from_str(&shown)?;
    assert_eq!(v["policy"], json!({}), "nothing stored: {v}");
    let out = cp
        .cli(&[
            "policy",
            "set-group",
            "--org",
            "default",
            "--group",
            "Nope",
            "--file",
            &bad,
        ])
        .await?;
    assert!(!out.status.success());
    Ok(())
}

/// Two control-plane replicas on one PostgreSQL, as behind a load balancer: an agent streaming
/// from replica B receives a group change made through replica A's SCIM endpoint and the CLI
/// (a third process), and is wiped when A deactivates its user. Replica B learns of A's
/// commits only through the database.
async fn replicas_share_one_database(backend: Backend) -> Result<()> {
    let a = start_cp(backend, &["--keepalive-seconds", "1"]).await?;
    let b = a.start_replica().await?;
    assert_ne!(a.grpc_url, b.grpc_url);
    let files = tempfile::tempdir()?;
    let uid = create_user(&a, "roamer@example.com").await?;
    let gid = create_group(&b, "Eng", &[]).await?;
    let f = write_policy(
        files.path(),
        "eng.json",
        r#"{"blocked_tools": ["WebFetch"]}"#,
    )?;
    a.cli_ok(&[
        "policy",
        "set-group",
        "--org",
        "default",
        "--group",
        "Eng",
        "--file",
        &f,
    ])
    .await?;

    let mut w = Workstation::new()?;
    w.enroll_ok(&b, "roamer@example.com").await?;
    w.start()?;
    w.wait_for("a first policy from replica B", |w| w.drop_in().is_some())
        .await?;
    assert!(!w.deny_rules().iter().any(|r| r == "WebFetch"));

    // Membership added through replica A: A recomputes, B's stream delivers.
    a.scim()
        .patch_ops(
            &format!("/Groups/{gid}"),
            json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
        )
        .await?
        .expect(200)?;
    w.wait_for("the Eng restriction via replica B", |w| {
        w.deny_rules().iter().any(|r| r == "WebFetch")
    })
    .await?;

    // A policy change by the CLI reaches it the same way.
    let f2 = write_policy(
        files.path(),
        "eng2.json",
        r#"{"blocked_tools": ["WebFetch", "WebSearch"]}"#,
    )?;
    a.cli_ok(&[
        "policy",
        "set-group",
        "--org",
        "default",
        "--group",
        "Eng",
        "--file",
        &f2,
    ])
    .await?;
    w.wait_for("WebSearch denied via replica B", |w| {
        w.deny_rules().iter().any(|r| r == "WebSearch")
    })
    .await?;

    // Deactivated through replica A: the agent on replica B is told to wipe.
    a.scim()
        .patch_ops(
            &format!("/Users/{uid}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await?
        .expect(200)?;
    w.wait_for("the wipe via replica B", |w| {
        !w.state().join("device.json").exists() && w.deny_rules().iter().any(|r| r == "*")
    })
    .await?;
    let audit = a
        .cli_ok(&["audit", "--org", "default", "--user", "roamer@example.com"])
        .await?;
    assert!(audit.to_lowercase().contains("wipe"), "{audit}");
    w.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_database_postgres() {
    palisade_tests::run_scenario(
        "replicas_share_one_database_postgres",
        replicas_share_one_database(Backend::Postgres),
    )
    .await
}

backend_tests! {
    group_policy_reaches_every_device => group_policy_reaches_every_device_sqlite, group_policy_reaches_every_device_postgres;
    deprovisioning_wipes => deprovisioning_wipes_sqlite, deprovisioning_wipes_postgres;
    tampering_is_restored => tampering_is_restored_sqlite, tampering_is_restored_postgres;
    restarts_and_offline_agents_converge => restarts_and_offline_agents_converge_sqlite, restarts_and_offline_agents_converge_postgres;
    bad_input_is_refused => bad_input_is_refused_sqlite, bad_input_is_refused_postgres;
}
