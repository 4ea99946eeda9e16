//! The real Claude Code client (pinned 2.1.332) against hand-written managed settings: what each key Palisade relies on really does.
//!
//! These tests prove the facts `palisade_tests::claude_code` and the product rely on, with JSON
//! literals mounted as `/etc/claude-code` (see that module for how, and
//! `tests/setup-test-deps.sh` for the install). Each test that checks a block also runs the
//! unblocked control case, so a test cannot pass because the client never tried.
//! Root and the installed client are needed; without them the tests skip, except in CI.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use palisade_tests::claude_code::{ClaudeCode, McpServer, RunOptions, RunResult, SettingsDir};
use serde_json::{json, Value};

/// The tools the client offers with no managed settings (the request's `tools` array; the init
/// event says `Task` for `Agent`). A change here after an upgrade means Palisade's lockdown must
/// be checked again.
const BASELINE_TOOLS: &[&str] = &[
    "Agent",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "ListAgents",
    "Monitor",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "Skill",
    "TaskStop",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
];

const DEV_KEY: &str = "sk-dev-own-key";
const HELPER_KEY: &str = "sk-from-palisade-helper";

fn client() -> Result<Option<ClaudeCode>> {
    ClaudeCode::find_or_skip()
}

async fn run(cc: &ClaudeCode, settings: &Value, opts: RunOptions) -> Result<RunResult> {
    let dir = SettingsDir::with_drop_in(settings)?;
    cc.run(dir.path(), opts).await
}

async fn run_empty(cc: &ClaudeCode, opts: RunOptions) -> Result<RunResult> {
    let dir = SettingsDir::empty()?;
    cc.run(dir.path(), opts).await
}

fn no_invalid_entries(r: &RunResult) -> Result<()> {
    let invalid = r.invalid_settings();
    ensure!(
        invalid.is_empty(),
        "client reported invalid entries: {invalid:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_settings_offer_the_baseline_tools() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let r = run_empty(&cc, RunOptions::new().api_key(DEV_KEY)).await?;
    let init = r.init()?;
    ensure!(r.success(), "client failed: {r:?}");
    ensure!(init.permission_mode == "default", "{init:?}");
    ensure!(init.api_key_source == "ANTHROPIC_API_KEY", "{init:?}");
    let offered: BTreeSet<String> = r.offered_tools()?.into_iter().collect();
    let baseline: BTreeSet<String> = BASELINE_TOOLS.iter().map(|s| (*s).to_owned()).collect();
    ensure!(
        offered == baseline,
        "offered tools changed: new {:?}, gone {:?}",
        offered.difference(&baseline).collect::<Vec<_>>(),
        baseline.difference(&offered).collect::<Vec<_>>()
    );
    ensure!(init.has_tool("Task") && init.has_tool("Bash"), "{init:?}");
    ensure!(r.first_turn()?.x_api_key() == Some(DEV_KEY));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_star_removes_every_tool_including_mcp_tools() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let server = McpServer::test("testsrv");
    let echo = server.tool_name("echo");
    let opts = || {
        RunOptions::new()
            .api_key(DEV_KEY)
            .user_mcp(server.clone())
            .tool_use(&echo, json!({"text": "hello"}))
            .tool_use("Read", json!({"file_path": "/etc/hostname"}))
            .skip_permissions()
    };

    // Control: the MCP tool is offered and runs.
    let open = run_empty(&cc, opts()).await?;
    ensure!(open.offered_tools()?.contains(&echo), "{open:?}");
    let res = open.expect_tool_result(&echo)?;
    ensure!(!res.is_error && res.text.contains("echo: hello"), "{res:?}");

    let r = run(&cc, &json!({"permissions": {"deny": ["*"]}}), opts()).await?;
    no_invalid_entries(&r)?;
    let init = r.init()?;
    ensure!(init.tools.is_empty(), "tools left: {:?}", init.tools);
    for turn in r.turns() {
        ensure!(
            turn.tool_names() == Some(vec![]),
            "a turn still offered tools: {:?}",
            turn.tool_names()
        );
    }
    // The server still connects (deny "*" removes tools, not servers) ...
    ensure!(init.mcp_status("testsrv") == Some("connected"), "{init:?}");
    // ... but its tool and the built-ins are gone.
    for tool in [echo.as_str(), "Read"] {
        let res = r.expect_tool_result(tool)?;
        ensure!(
            res.is_error
                && res
                    .text
                    .contains(&format!("No such tool available: {tool}")),
            "{tool}: {res:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_mcp_server_by_command_stops_a_renamed_server() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let renamed = McpServer::test("renamed");
    let opts = || RunOptions::new().api_key(DEV_KEY).user_mcp(renamed.clone());

    // A serverName deny is bypassed by choosing another name.
    let by_name = run(
        &cc,
        &json!({"deniedMcpServers": [{"serverName": "testsrv"}]}),
        opts(),
    )
    .await?;
    no_invalid_entries(&by_name)?;
    ensure!(
        by_name.init()?.mcp_status("renamed") == Some("connected"),
        "{by_name:?}"
    );
    ensure!(by_name.mcp_server_started("renamed"));

    // A serverCommand deny (the exact command line) is not.
    let by_command = run(
        &cc,
        &json!({"deniedMcpServers": [{"serverCommand": renamed.command_line()}]}),
        opts(),
    )
    .await?;
    no_invalid_entries(&by_command)?;
    let init = by_command.init()?;
    ensure!(init.mcp_status("renamed").is_none(), "{init:?}");
    ensure!(
        !init.tools.iter().any(|t| t.starts_with("mcp__")),
        "{init:?}"
    );
    ensure!(
        !by_command.mcp_server_started("renamed"),
        "the client started a denied server"
    );

    // Only the whole command line matches: the program alone does not.
    let prefix = run(
        &cc,
        &json!({"deniedMcpServers": [{"serverCommand": [renamed.command_line()[0].clone()]}]}),
        opts(),
    )
    .await?;
    ensure!(
        prefix.init()?.mcp_status("renamed") == Some("connected"),
        "{prefix:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_mcp_allowlist_blocks_user_project_and_sideloaded_servers() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let sideload_dir = tempfile::tempdir()?;
    let sideload = sideload_dir.path().join("side.json");
    let side = McpServer::test("side");
    std::fs::write(
        &sideload,
        json!({"mcpServers": {"side": {"type": "stdio", "command": side.command_line()[0],
            "args": &side.command_line()[1..]}}})
        .to_string(),
    )?;
    let sideload_arg = sideload.display().to_string();
    let opts = || {
        RunOptions::new()
            .api_key(DEV_KEY)
            .user_mcp(McpServer::test("usersrv"))
            .project_mcp(McpServer::test("projsrv"))
            .args(&["--mcp-config", &sideload_arg])
    };
    let status = |r: &RunResult| -> Result<Vec<(String, String)>> {
        Ok(r.init()?
            .mcp_servers
            .iter()
            .map(|s| (s.name.clone(), s.status.clone()))
            .collect())
    };
    let all_three = vec![
        ("projsrv".to_owned(), "connected".to_owned()),
        ("side".to_owned(), "connected".to_owned()),
        ("usersrv".to_owned(), "connected".to_owned()),
    ];
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };

    // Control: all three connect.
    let open = run_empty(&cc, opts()).await?;
    ensure!(sorted(status(&open)?) == all_three, "{open:?}");

    // allowManagedMcpServersOnly alone changes nothing (there is no allowlist to enforce).
    let lock_only = run(&cc, &json!({"allowManagedMcpServersOnly": true}), opts()).await?;
    ensure!(sorted(status(&lock_only)?) == all_three, "{lock_only:?}");

    // strictPluginOnlyCustomization: ["mcp"] blocks user and project servers, not --mcp-config.
    let strict = run(
        &cc,
        &json!({"strictPluginOnlyCustomization": ["mcp"]}),
        opts(),
    )
    .await?;
    no_invalid_entries(&strict)?;
    ensure!(
        status(&strict)? == vec![("side".to_owned(), "connected".to_owned())],
        "{strict:?}"
    );

    // The paranoid block: an empty allowlist (with the lock) stops all three.
    let paranoid = run(
        &cc,
        &json!({
            "allowedMcpServers": [],
            "allowManagedMcpServersOnly": true,
            "strictPluginOnlyCustomization": ["mcp"],
        }),
        opts(),
    )
    .await?;
    no_invalid_entries(&paranoid)?;
    ensure!(status(&paranoid)?.is_empty(), "{paranoid:?}");
    for name in ["usersrv", "projsrv"] {
        ensure!(!paranoid.mcp_server_started(name), "{name} was started");
    }
    ensure!(
        paranoid
            .stderr
            .contains("MCP server blocked by enterprise policy: side"),
        "{}",
        paranoid.stderr
    );

    // disableSideloadFlags refuses --mcp-config outright.
    let no_sideload = run(&cc, &json!({"disableSideloadFlags": true}), opts()).await?;
    ensure!(!no_sideload.success(), "{no_sideload:?}");
    ensure!(
        no_sideload
            .stderr
            .contains("--mcp-config is disabled by your organization's managed settings (disableSideloadFlags)"),
        "{}",
        no_sideload.stderr
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_env_blank_api_key_lets_the_helper_key_through() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let helper = format!("echo {HELPER_KEY}");

    // Without the env entry the developer's own key wins x-api-key.
    let own = run(
        &cc,
        &json!({"apiKeyHelper": helper}),
        RunOptions::new().api_key(DEV_KEY),
    )
    .await?;
    no_invalid_entries(&own)?;
    ensure!(own.init()?.api_key_source == "ANTHROPIC_API_KEY", "{own:?}");
    ensure!(own.first_turn()?.x_api_key() == Some(DEV_KEY), "{own:?}");

    // With "ANTHROPIC_API_KEY": "" the helper's key is the one sent.
    let blanked = run(
        &cc,
        &json!({"apiKeyHelper": helper, "env": {"ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": ""}}),
        RunOptions::new().api_key(DEV_KEY).env("ANTHROPIC_AUTH_TOKEN", "tok-dev"),
    )
    .await?;
    no_invalid_entries(&blanked)?;
    ensure!(
        blanked.init()?.api_key_source == "apiKeyHelper",
        "{blanked:?}"
    );
    let turn = blanked.first_turn()?;
    ensure!(turn.x_api_key() == Some(HELPER_KEY), "{turn:?}");
    ensure!(turn.bearer() == Some(HELPER_KEY), "{turn:?}");
    for req in &blanked.requests {
        ensure!(
            !req.headers
                .values()
                .any(|v| v.contains(DEV_KEY) || v.contains("tok-dev")),
            "the developer's credential leaked: {req:?}"
        );
    }

    // Blanking only ANTHROPIC_API_KEY leaves an exported ANTHROPIC_AUTH_TOKEN as the bearer.
    let token = run(
        &cc,
        &json!({"apiKeyHelper": helper, "env": {"ANTHROPIC_API_KEY": ""}}),
        RunOptions::new().env("ANTHROPIC_AUTH_TOKEN", "tok-dev"),
    )
    .await?;
    let turn = token.first_turn()?;
    ensure!(turn.x_api_key() == Some(HELPER_KEY), "{turn:?}");
    ensure!(turn.bearer() == Some("tok-dev"), "{turn:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_deny_blocks_read_and_write_denies_block_writes() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let secret_dir = tempfile::tempdir()?;
    let secret_dir_path = secret_dir.path().canonicalize()?;
    let secret = secret_dir_path.join("file.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT\n")?;
    let new_file = secret_dir_path.join("new.txt");
    let opts = || {
        RunOptions::new()
            .api_key(DEV_KEY)
            .skip_permissions()
            .tool_use("Read", json!({"file_path": secret}))
            .tool_use(
                "Write",
                json!({"file_path": new_file, "content": "written\n"}),
            )
    };
    let rule_path = format!("/{}", secret_dir_path.display()); // `//abs/path`

    // Control: both work.
    let open = run_empty(&cc, opts()).await?;
    let read = open.expect_tool_result("Read")?;
    ensure!(
        !read.is_error && read.text.contains("TOP-SECRET-CONTENT"),
        "{read:?}"
    );
    ensure!(new_file.exists(), "control Write did not write");
    std::fs::remove_file(&new_file)?;

    // Read(//dir/**) stops Read (and, as a side effect, Write into that directory).
    let r = run(
        &cc,
        &json!({"permissions": {"deny": [format!("Read({rule_path}/**)")]}}),
        opts(),
    )
    .await?;
    no_invalid_entries(&r)?;
    let read = r.expect_tool_result("Read")?;
    ensure!(
        read.is_error
            && read.text.contains("denied by your permission settings")
            && !read.text.contains("TOP-SECRET"),
        "{read:?}"
    );
    ensure!(!new_file.exists());

    // Bare Edit + Write + NotebookEdit remove the write tools.
    let r = run(
        &cc,
        &json!({"permissions": {"deny": ["Edit", "Write", "NotebookEdit"]}}),
        opts(),
    )
    .await?;
    no_invalid_entries(&r)?;
    let offered = r.offered_tools()?;
    for tool in ["Edit", "Write", "NotebookEdit"] {
        ensure!(!offered.iter().any(|t| t == tool), "{tool} still offered");
    }
    let write = r.expect_tool_result("Write")?;
    ensure!(
        write.is_error && write.text.contains("No such tool available: Write"),
        "{write:?}"
    );
    ensure!(!new_file.exists());

    // Edit(//**) matches every absolute path in 2.1.332 (issue #52123 does not reproduce).
    let r = run(
        &cc,
        &json!({"permissions": {"deny": ["Edit(//**)"]}}),
        opts(),
    )
    .await?;
    no_invalid_entries(&r)?;
    let write = r.expect_tool_result("Write")?;
    ensure!(
        write.is_error && write.text.contains("denied by your permission settings"),
        "{write:?}"
    );
    ensure!(!new_file.exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_modes_take_effect_where_the_client_reads_them() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let auto = || {
        RunOptions::new()
            .api_key(DEV_KEY)
            .args(&["--permission-mode", "auto"])
    };
    let bypass = || RunOptions::new().api_key(DEV_KEY).skip_permissions();
    let mode = |r: &RunResult| -> Result<String> { Ok(r.init()?.permission_mode.clone()) };

    ensure!(mode(&run_empty(&cc, auto()).await?)? == "auto");
    for settings in [
        json!({"disableAutoMode": "disable"}),
        json!({"permissions": {"disableAutoMode": "disable"}}),
    ] {
        let r = run(&cc, &settings, auto()).await?;
        no_invalid_entries(&r)?;
        ensure!(mode(&r)? == "default", "{settings}: {r:?}");
    }

    ensure!(mode(&run_empty(&cc, bypass()).await?)? == "bypassPermissions");
    let r = run(
        &cc,
        &json!({"permissions": {"disableBypassPermissionsMode": "disable"}}),
        bypass(),
    )
    .await?;
    ensure!(mode(&r)? == "default", "{r:?}");
    // At the top level the key is unknown: ignored, and not reported.
    let r = run(
        &cc,
        &json!({"disableBypassPermissionsMode": "disable"}),
        bypass(),
    )
    .await?;
    no_invalid_entries(&r)?;
    ensure!(mode(&r)? == "bypassPermissions", "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforced_model_allowlist_pins_the_model() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let sonnet = || {
        RunOptions::new()
            .api_key(DEV_KEY)
            .args(&["--model", "sonnet"])
    };
    let model = |r: &RunResult| -> Result<String> {
        Ok(r.first_turn()?.model().unwrap_or_default().to_owned())
    };
    let open = model(&run_empty(&cc, sonnet()).await?)?;
    ensure!(open.contains("sonnet"), "{open}");

    let enforced = run(
        &cc,
        &json!({"availableModels": ["haiku"], "enforceAvailableModels": true}),
        sonnet(),
    )
    .await?;
    no_invalid_entries(&enforced)?;
    let m = model(&enforced)?;
    ensure!(m.contains("haiku"), "{m}");
    ensure!(
        enforced.system_events("informational").any(|e| e["content"]
            .as_str()
            .is_some_and(|c| c.contains("restricted by your organization"))),
        "no restriction notice: {:?}",
        enforced.events
    );

    // Without enforceAvailableModels the list rejects sonnet but falls back to the default model.
    let loose = run(&cc, &json!({"availableModels": ["haiku"]}), sonnet()).await?;
    let m = model(&loose)?;
    ensure!(!m.contains("sonnet") && !m.contains("haiku"), "{m}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_version_range_refuses_to_start() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let too_old = run(
        &cc,
        &json!({"requiredMinimumVersion": "99.0.0"}),
        RunOptions::new().api_key(DEV_KEY),
    )
    .await?;
    ensure!(!too_old.success(), "{too_old:?}");
    ensure!(
        too_old
            .stderr
            .contains("is older than the minimum version required by your organization (99.0.0)"),
        "{}",
        too_old.stderr
    );
    ensure!(too_old.requests.is_empty(), "{:?}", too_old.requests);

    // An unparsable version fails open: the client starts.
    let garbage = run(
        &cc,
        &json!({"requiredMinimumVersion": "not-a-version"}),
        RunOptions::new().api_key(DEV_KEY),
    )
    .await?;
    ensure!(garbage.success(), "{garbage:?}");
    Ok(())
}

/// Every key Palisade may render, with the type it must have (question 5 of the oracle findings).
fn every_key() -> Value {
    json!({
        "disableRemoteControl": true,
        "disableWorkflows": true,
        "disableArtifact": true,
        "disableAgentView": true,
        "disableClaudeAiConnectors": true,
        "channelsEnabled": false,
        "disableBundledSkills": true,
        "disableSkillShellExecution": true,
        "disableSideloadFlags": true,
        "disableAutoMode": "disable",
        "cleanupPeriodDays": 7,
        "requiredMinimumVersion": "2.1.0",
        "requiredMaximumVersion": "9.0.0",
        "availableModels": ["sonnet", "haiku"],
        "enforceAvailableModels": true,
        "model": "sonnet",
        "strictKnownMarketplaces": [{"source": "github", "repo": "acme/plugins"}],
        "blockedMarketplaces": [{"source": "github", "repo": "evil/plugins"}],
        "allowedHttpHookUrls": ["https://audit.example.com/*"],
        "allowManagedHooksOnly": true,
        "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/bin/true"}]}]},
        "allowManagedMcpServersOnly": true,
        "allowedMcpServers": [],
        "deniedMcpServers": [{"serverName": "x"}, {"serverCommand": ["npx", "evil"]}],
        "strictPluginOnlyCustomization": ["skills", "mcp"],
        "sandbox": {
            "enabled": true, "failIfUnavailable": true, "allowUnsandboxedCommands": false,
            "autoAllowBashIfSandboxed": false,
            "filesystem": {"denyRead": ["~/.ssh"], "denyWrite": ["/etc"]},
            "network": {"allowedDomains": ["docs.rs"], "deniedDomains": ["pastebin.com"],
                "allowManagedDomainsOnly": true, "strictAllowlist": true},
        },
        "permissions": {
            "additionalDirectories": ["/srv/shared"],
            "ask": ["Bash(git push *)"],
            "deny": ["Read(//etc/shadow)", "WebFetch(domain:pastebin.com)", "Bash(curl *)"],
            "defaultMode": "dontAsk",
            "disableBypassPermissionsMode": "disable",
            "disableAutoMode": "disable",
        },
        "apiKeyHelper": "/bin/echo sk-x",
        "claudeMd": "text",
        "companyAnnouncements": ["x"],
        "env": {"ANTHROPIC_API_KEY": "", "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "300000"},
    })
}

/// Replaces every leaf of `v` (a list or an object below the nesting keys counts as a leaf) by
/// a value of another type: a string for a number, the number 17 for anything else.
fn wrong_types(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let nested = matches!(
                        k.as_str(),
                        "sandbox" | "permissions" | "filesystem" | "network"
                    );
                    (
                        k.clone(),
                        if nested {
                            wrong_types(v)
                        } else {
                            wrong_leaf(v)
                        },
                    )
                })
                .collect(),
        ),
        other => wrong_leaf(other),
    }
}

fn wrong_leaf(v: &Value) -> Value {
    if v.is_number() {
        json!("seventeen")
    } else {
        json!(17)
    }
}

fn leaf_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if matches!(
                k.as_str(),
                "sandbox" | "permissions" | "filesystem" | "network"
            ) {
                leaf_keys(child, &path, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_accepts_every_key_with_the_right_type() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let good = SettingsDir::with_drop_in(&every_key())?;
    let report = cc.doctor(good.path()).await?;
    ensure!(report.status.success(), "{report:?}");
    ensure!(
        report.stdout.contains("Claude Code doctor"),
        "unexpected doctor output: {}",
        report.stdout
    );
    ensure!(
        report.invalid.is_empty(),
        "doctor reported: {:#?}",
        report.invalid
    );

    // The same keys with wrong types are each reported: the keys are known (unknown keys are
    // silently ignored, so the check above alone would prove nothing).
    let bad = SettingsDir::with_drop_in(&wrong_types(&every_key()))?;
    let report = cc.doctor(bad.path()).await?;
    let reported: BTreeSet<&str> = report.invalid.iter().map(|i| i.key.as_str()).collect();
    let mut keys = Vec::new();
    leaf_keys(&every_key(), "", &mut keys);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !reported.contains(k.as_str()))
        .collect();
    ensure!(
        missing.is_empty(),
        "doctor did not report these wrong-typed keys (unknown to the client?): {missing:?}\n{}",
        report.stdout
    );
    ensure!(report
        .invalid
        .iter()
        .all(|i| i.file == "/etc/claude-code/managed-settings.d/50-palisade.json"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_entry_is_named_on_stderr_and_the_rest_still_applies() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let r = run(
        &cc,
        &json!({"cleanupPeriodDays": "seven", "permissions": {"deny": ["Bash"]}}),
        RunOptions::new().api_key(DEV_KEY),
    )
    .await?;
    let invalid = r.invalid_settings();
    ensure!(
        invalid.len() == 1 && invalid[0].key == "cleanupPeriodDays",
        "{invalid:?}\n{}",
        r.stderr
    );
    ensure!(!r.offered_tools()?.iter().any(|t| t == "Bash"), "{r:?}");

    // A drop-in that is not JSON at all stops the client.
    let dir = SettingsDir::empty()?;
    dir.write_raw("managed-settings.d/50-palisade.json", "{ not json")?;
    let broken = cc
        .run(dir.path(), RunOptions::new().api_key(DEV_KEY))
        .await
        .context("running with a broken drop-in")?;
    ensure!(
        !broken.success(),
        "client ran with a broken drop-in: {broken:?}"
    );
    ensure!(
        broken
            .stderr
            .contains("Managed settings document could not be parsed as a JSON object"),
        "{}",
        broken.stderr
    );
    ensure!(broken.requests.is_empty(), "{:?}", broken.requests);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_plugin_only_skills_hides_user_skills() -> Result<()> {
    let Some(cc) = client()? else { return Ok(()) };
    let opts = || RunOptions::new().api_key(DEV_KEY).user_skill("myskill");
    let skills = |r: &RunResult| -> Result<Vec<String>> { Ok(r.init()?.skills.clone()) };

    let open = skills(&run_empty(&cc, opts()).await?)?;
    ensure!(open.iter().any(|s| s == "myskill"), "{open:?}");
    ensure!(open.iter().any(|s| s == "code-review"), "{open:?}");

    let strict = run(
        &cc,
        &json!({"strictPluginOnlyCustomization": ["skills"]}),
        opts(),
    )
    .await?;
    no_invalid_entries(&strict)?;
    let s = skills(&strict)?;
    ensure!(
        !s.iter().any(|s| s == "myskill"),
        "user skill still loaded: {s:?}"
    );
    ensure!(
        s.iter().any(|s| s == "code-review"),
        "bundled skills gone too: {s:?}"
    );

    // disableBundledSkills removes the bundled ones (a few built-in plugin skills stay).
    let no_bundled = skills(&run(&cc, &json!({"disableBundledSkills": true}), opts()).await?)?;
    ensure!(
        no_bundled.iter().any(|s| s == "myskill") && !no_bundled.iter().any(|s| s == "code-review"),
        "{no_bundled:?}"
    );
    Ok(())
}
