//! Palisade's policies checked with the real Claude Code client (pinned 2.1.332) as the oracle:
//! the control plane computes the policy, the real agent writes the drop-in (or the CLI renders
//! it), and the client runs against exactly that directory. What is asserted is what the client
//! does — which tools it offers, which MCP servers it starts, which calls a rule denies, which
//! key it sends, which entries it drops — for every security level, the lockdown after
//! deprovisioning, and a policy using most keys.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use palisade_tests::claude_code::{ClaudeCode, McpServer, RunOptions, RunResult, SettingsDir};
use palisade_tests::workstation::{
    secrets_key_file, set_org_api_key, use_helper_delivery, Workstation,
};
use palisade_tests::{Backend, ControlPlane};
use serde_json::{json, Value};

const ORG_KEY: &str = "sk-ant-org-key-from-palisade";
const DEV_KEY: &str = "sk-dev-own-key";
const WAIT: Duration = Duration::from_secs(30);

async fn start_cp() -> Result<ControlPlane> {
    let key = secrets_key_file()?;
    ControlPlane::start(
        Backend::Sqlite,
        &["--secrets-key-file", &key, "--keepalive-seconds", "1"],
    )
    .await
}

async fn create_user(cp: &ControlPlane, user_name: &str) -> Result<String> {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "emails": [{"primary": true, "value": user_name}],
        "active": true
    });
    let r = cp.scim().post("/Users", &body).await?;
    r.expect(201)?;
    r.id()
}

async fn set_default_policy(
    cp: &ControlPlane,
    dir: &std::path::Path,
    policy: &Value,
) -> Result<()> {
    let file = dir.join(format!("p-{}.json", palisade_tests::random_hex()));
    std::fs::write(&file, policy.to_string())?;
    cp.cli_ok(&[
        "policy",
        "set-default",
        "--org",
        "default",
        "--file",
        &file.display().to_string(),
    ])
    .await?;
    Ok(())
}

/// Waits until the agent's drop-in satisfies `pred`.
async fn wait_drop_in(
    ws: &Workstation,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = ws.drop_in() {
            if pred(&v) {
                return Ok(v);
            }
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; agent log:\n{}",
            ws.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn no_invalid_entries(r: &RunResult) -> Result<()> {
    let invalid = r.invalid_settings();
    ensure!(
        invalid.is_empty(),
        "the client dropped entries: {invalid:?}\nstderr: {}",
        r.stderr
    );
    Ok(())
}

fn mcp_connected(r: &RunResult, name: &str) -> Result<bool> {
    Ok(r.init()?.mcp_status(name) == Some("connected"))
}

/// Every level and the lockdown, as the real agent writes them for a real person: the client
/// offers Bash and starts a user MCP server at minimal; moderate refuses bypass mode; strict
/// refuses auto mode and sends Palisade's key although the developer exported their own;
/// paranoid sandboxes and starts no user MCP server; after deprovisioning the client is offered
/// no tool and starts no MCP server.
#[tokio::test]
async fn each_level_and_the_lockdown_as_the_agent_writes_them() -> Result<()> {
    let Some(cc) = ClaudeCode::find_or_skip()? else {
        return Ok(());
    };
    let cp = start_cp().await?;
    let files = tempfile::tempdir()?;
    let uid = create_user(&cp, "dev@example.com").await?;
    set_org_api_key(&cp, ORG_KEY).await?;
    // The client must see the org key itself here (`claude_code_relay.rs` covers the relay).
    use_helper_delivery(&cp).await?;
    let mut ws = Workstation::new()?;
    ws.enroll_ok(&cp, "dev@example.com").await?;
    ws.start()?;
    let server = McpServer::test("devtools");

    // minimal: the control case for everything below.
    set_default_policy(&cp, files.path(), &json!({"security_level": "minimal"})).await?;
    wait_drop_in(&ws, "the minimal policy with the key helper", |v| {
        v.get("apiKeyHelper").is_some()
    })
    .await?;
    let r = cc
        .run(&ws.settings(), RunOptions::new().user_mcp(server.clone()))
        .await?;
    no_invalid_entries(&r)?;
    ensure!(
        r.offered_tools()?.iter().any(|t| t == "Bash"),
        "minimal offers Bash: {:?}",
        r.offered_tools()?
    );
    ensure!(
        mcp_connected(&r, "devtools")?,
        "minimal starts the user MCP server: {:?}",
        r.init()?.mcp_servers
    );
    ensure!(
        r.first_turn()?.x_api_key() == Some(ORG_KEY),
        "the helper serves the org key"
    );

    // moderate: --dangerously-skip-permissions is refused.
    set_default_policy(&cp, files.path(), &json!({"security_level": "moderate"})).await?;
    wait_drop_in(&ws, "moderate", |v| {
        v["permissions"]["disableBypassPermissionsMode"] == "disable"
    })
    .await?;
    let r = cc
        .run(&ws.settings(), RunOptions::new().skip_permissions())
        .await?;
    no_invalid_entries(&r)?;
    ensure!(
        r.init()?.permission_mode == "default",
        "bypass refused: {}",
        r.init()?.permission_mode
    );

    // strict: auto mode is refused and a developer's own key does not override Palisade's.
    set_default_policy(&cp, files.path(), &json!({"security_level": "strict"})).await?;
    wait_drop_in(&ws, "strict", |v| v["disableAutoMode"] == "disable").await?;
    let r = cc
        .run(
            &ws.settings(),
            RunOptions::new()
                .args(&["--permission-mode", "auto"])
                .api_key(DEV_KEY),
        )
        .await?;
    no_invalid_entries(&r)?;
    ensure!(
        r.init()?.permission_mode == "default",
        "auto refused: {}",
        r.init()?.permission_mode
    );
    let turn = r.first_turn()?;
    ensure!(
        turn.x_api_key() == Some(ORG_KEY),
        "x-api-key is Palisade's, not the developer's: {:?}",
        turn.x_api_key()
    );
    ensure!(
        r.init()?.api_key_source == "apiKeyHelper",
        "key source: {}",
        r.init()?.api_key_source
    );

    // paranoid: the sandbox is on and user MCP servers do not start.
    set_default_policy(&cp, files.path(), &json!({"security_level": "paranoid"})).await?;
    wait_drop_in(&ws, "paranoid", |v| v["sandbox"]["enabled"] == true).await?;
    let r = cc
        .run(&ws.settings(), RunOptions::new().user_mcp(server.clone()))
        .await?;
    no_invalid_entries(&r)?;
    ensure!(
        r.init()?.sandbox_enabled == Some(true),
        "sandboxed: {:?}",
        r.init()?.raw
    );
    ensure!(
        r.init()?.mcp_status("devtools").is_none(),
        "no user MCP server: {:?}",
        r.init()?.mcp_servers
    );
    ensure!(
        !r.mcp_server_started("devtools"),
        "the server process never started"
    );

    // Deprovisioning: the lockdown leaves no tool and no MCP server.
    cp.scim()
        .patch_ops(
            &format!("/Users/{uid}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await?
        .expect(200)?;
    wait_drop_in(&ws, "the lockdown", |v| {
        v["permissions"]["deny"]
            .as_array()
            .is_some_and(|d| d.iter().any(|r| r == "*"))
    })
    .await?;
    let r = cc
        .run(
            &ws.settings(),
            RunOptions::new()
                .user_mcp(server.clone())
                .project_mcp(McpServer::test("projecttools")),
        )
        .await?;
    no_invalid_entries(&r)?;
    let init = r.init()?;
    ensure!(
        init.tools.is_empty(),
        "no tool after deprovisioning: {:?}",
        init.tools
    );
    if let Ok(turn) = r.first_turn() {
        ensure!(
            turn.tool_names().unwrap_or_default().is_empty(),
            "no tool offered: {:?}",
            turn.tool_names()
        );
    }
    ensure!(
        init.mcp_servers.is_empty(),
        "no MCP server: {:?}",
        init.mcp_servers
    );
    ensure!(
        !r.mcp_server_started("devtools") && !r.mcp_server_started("projecttools"),
        "no server process started"
    );
    ws.stop().await;
    Ok(())
}

/// `policy show --render` prints byte for byte what the agent wrote for the same person.
#[tokio::test]
async fn the_cli_preview_is_the_agent_file() -> Result<()> {
    let cp = start_cp().await?;
    let files = tempfile::tempdir()?;
    create_user(&cp, "preview@example.com").await?;
    set_org_api_key(&cp, ORG_KEY).await?;
    set_default_policy(
        &cp,
        files.path(),
        &json!({"security_level": "strict", "files": {"deny_read": ["~/.ssh"]}, "network": {"allowed_domains": ["docs.rs"]}}),
    )
    .await?;
    let mut ws = Workstation::new()?;
    ws.enroll_ok(&cp, "preview@example.com").await?;
    ws.start()?;
    let on_disk = wait_drop_in(&ws, "the policy", |v| {
        v.get("apiKeyHelper").is_some() && v["sandbox"].is_object()
    })
    .await?;
    let helper = on_disk["apiKeyHelper"]
        .as_str()
        .context("helper")?
        .to_owned();
    // Proxy delivery (the default): the drop-in points Claude Code at this agent's relay.
    let relay = on_disk
        .pointer("/env/ANTHROPIC_BASE_URL")
        .and_then(|u| u.as_str())
        .and_then(|u| u.strip_prefix("http://"))
        .context("no relay in the drop-in")?
        .to_owned();
    let preview = cp
        .cli_ok(&[
            "policy",
            "show",
            "--org",
            "default",
            "--user",
            "preview@example.com",
            "--render",
            "--api-key-helper",
            &helper,
            "--relay-addr",
            &relay,
        ])
        .await?;
    let bytes = std::fs::read(ws.drop_in_path())?;
    ensure!(
        preview.as_bytes() == bytes.as_slice(),
        "preview:\n{preview}\nfile:\n{}",
        String::from_utf8_lossy(&bytes)
    );
    ws.stop().await;
    Ok(())
}

/// A policy using most keys, rendered by the CLI, is loaded by the client without a dropped
/// entry, and each restriction holds: a read-deny path, an MCP server denied by its command
/// under another name, a model allowlist, a denied WebFetch domain, the network lock, a
/// minimum version.
#[tokio::test]
async fn what_the_cli_renders_the_client_enforces() -> Result<()> {
    let Some(cc) = ClaudeCode::find_or_skip()? else {
        return Ok(());
    };
    let cp = start_cp().await?;
    let files = tempfile::tempdir()?;
    create_user(&cp, "rich@example.com").await?;
    let secret_dir = tempfile::tempdir()?;
    let secret = secret_dir.path().join("id_secret");
    std::fs::write(&secret, "TOP-SECRET")?;
    let server = McpServer::test("renamed-by-developer");
    let policy = json!({
        "permissions": {"deny": ["Bash(curl *)"], "ask": ["Bash(git push *)"], "disable_auto_mode": true},
        "files": {"deny_read": [secret_dir.path().display().to_string(), "**/.env"], "deny_write": ["/etc"]},
        "network": {"allowed_domains": ["docs.rs"], "denied_domains": ["pastebin.com"]},
        "mcp": {"denied": [{"command": server.command_line()}]},
        "models": {"available": ["haiku"], "enforce": true},
        "hooks": {"events": {"SessionStart": [{"hooks": [{"type": "command", "command": "/bin/true"}]}]}},
        "claude_code": {"required_minimum_version": "2.1.0"},
        "credentials": {"block_personal_keys": true},
        "plugins": {"blocked_marketplaces": [{"source": "github", "repo": "evil/plugins"}], "disable_sideload_flags": true},
        "skills": {"disable_bundled": true},
        "features": {"disable_remote_control": true, "disable_workflows": true, "disable_artifact": true, "disable_channels": true},
        "session": {"cleanup_period_days": 14, "announcements": ["Governed by Palisade"], "claude_md": "Never paste customer data."},
        "telemetry": {"endpoint": "http://127.0.0.1:9", "include_groups": true}
    });
    set_default_policy(&cp, files.path(), &policy).await?;
    let rendered = cp
        .cli_ok(&[
            "policy",
            "show",
            "--org",
            "default",
            "--user",
            "rich@example.com",
            "--render",
            "--api-key-helper",
            "echo sk-from-helper",
        ])
        .await?;
    let settings: Value = serde_json::from_str(&rendered).context("the render is JSON")?;
    let dir = SettingsDir::with_drop_in(&settings)?;

    let doctor = cc.doctor(dir.path()).await?;
    ensure!(
        doctor.invalid.is_empty(),
        "doctor reports invalid entries: {:?}",
        doctor.invalid
    );

    let r = cc
        .run(
            dir.path(),
            RunOptions::new()
                .skip_permissions()
                .api_key(DEV_KEY)
                .args(&["--model", "sonnet"])
                .user_mcp(server.clone())
                .tool_use("Read", json!({"file_path": secret.display().to_string()})),
        )
        .await?;
    no_invalid_entries(&r)?;
    let read = r.expect_tool_result("Read")?;
    ensure!(
        read.is_error && !read.text.contains("TOP-SECRET"),
        "the read-deny path holds: {read:?}"
    );
    ensure!(
        r.init()?.mcp_status("renamed-by-developer").is_none(),
        "denied by command: {:?}",
        r.init()?.mcp_servers
    );
    let turn = r.first_turn()?;
    ensure!(
        turn.model().is_some_and(|m| m.contains("haiku")),
        "model pinned: {:?}",
        turn.model()
    );
    ensure!(
        turn.x_api_key() == Some("sk-from-helper"),
        "personal key blocked: {:?}",
        turn.x_api_key()
    );
    let tools = r.offered_tools()?;
    ensure!(
        !tools.iter().any(|t| t == "Workflow"),
        "workflows off: {tools:?}"
    );
    Ok(())
}

/// `policy check --file F --render` renders a policy file with no user at all (what an admin
/// checks before rolling it out): every level's file loads in the real client without a
/// dropped entry, and a file with an invalid entry is refused with its key and index.
#[tokio::test]
async fn policy_files_render_without_a_user() -> Result<()> {
    let Some(cc) = ClaudeCode::find_or_skip()? else {
        return Ok(());
    };
    let files = tempfile::tempdir()?;
    for level in ["minimal", "moderate", "strict", "paranoid"] {
        let file = files.path().join(format!("{level}.toml"));
        std::fs::write(
            &file,
            format!("security_level = \"{level}\"\n[files]\ndeny_read = [\"~/.ssh\"]\n[models]\navailable = [\"sonnet\", \"haiku\"]\n"),
        )?;
        let out = palisade_tests::run_cli(&[
            "policy",
            "check",
            "--file",
            &file.display().to_string(),
            "--render",
        ])
        .await?;
        ensure!(
            out.status.success(),
            "{}",
            palisade_tests::describe_output(&["policy", "check"], &out)
        );
        let settings: Value = serde_json::from_slice(&out.stdout).context("the render is JSON")?;
        let dir = SettingsDir::with_drop_in(&settings)?;
        let doctor = cc.doctor(dir.path()).await?;
        ensure!(
            doctor.invalid.is_empty(),
            "{level}: doctor reports {:?}",
            doctor.invalid
        );
    }
    let bad = files.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"permissions": {"deny": ["Bash", "Write(/etc/**)"]}, "models": {"available": ["Sonnet"]}}"#,
    )?;
    let out = palisade_tests::run_cli(&[
        "policy",
        "check",
        "--file",
        &bad.display().to_string(),
        "--render",
    ])
    .await?;
    ensure!(!out.status.success(), "an invalid policy is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        err.contains("permissions.deny[1]") && err.contains("models.available[0]"),
        "{err}"
    );
    Ok(())
}
