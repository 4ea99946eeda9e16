//! Golden tests: each case's policy rendered for a platform must equal its file under
//! `tests/golden/` byte for byte. One case per key (a representative value), one per security
//! level, the lockdown, a version-1 file and a full policy. `PALISADE_BLESS=1` rewrites the
//! files; review the diff before committing.

use std::path::PathBuf;

use palisade_policy::{
    lockdown, render_bytes, GroupPolicy, Policy, RenderOptions, SecurityLevel, TargetOs,
};
use serde_json::{json, Value};

const HELPER: &str = "/usr/bin/palisade-agent api-key";

fn policy(v: Value) -> Policy {
    Policy::from_value(&v)
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .policy
}

/// (case name, policy, platform).
fn cases() -> Vec<(String, Policy, TargetOs)> {
    let linux = TargetOs::Linux;
    let mut out: Vec<(String, Policy, TargetOs)> = vec![
        (
            "permissions-deny".into(),
            policy(
                json!({"permissions": {"deny": ["Bash(curl *)", "WebFetch(domain:pastebin.com)", "Agent", "mcp__github__*"]}}),
            ),
            linux,
        ),
        (
            "permissions-ask".into(),
            policy(json!({"permissions": {"ask": ["Bash(git push *)"]}})),
            linux,
        ),
        (
            "permissions-allow".into(),
            policy(
                json!({"permissions": {"allow": ["Bash(npm test)"], "additional_directories": ["/srv/shared", "~/work", "C:\\Shared"]}}),
            ),
            linux,
        ),
        (
            "permissions-modes".into(),
            policy(
                json!({"permissions": {"default_mode": "plan", "disable_auto_mode": true, "disable_bypass_mode": true, "managed_rules_only": true}}),
            ),
            linux,
        ),
        (
            "files".into(),
            policy(
                json!({"files": {"deny_read": ["~/.ssh", "~/.aws", "**/.env", "/etc/shadow"], "deny_write": ["/etc", "C:\\Windows"]}}),
            ),
            linux,
        ),
        (
            "files-windows".into(),
            policy(
                json!({"files": {"deny_read": ["~/.ssh", "C:\\Secrets"], "deny_write": ["/etc", "C:\\Windows"]}}),
            ),
            TargetOs::Windows,
        ),
        (
            "files-root".into(),
            policy(json!({"files": {"deny_read": ["/"], "deny_write": ["/"]}})),
            linux,
        ),
        (
            "network-allowlist".into(),
            policy(
                json!({"network": {"allowed_domains": ["docs.rs", "*.example.com"], "denied_domains": ["pastebin.com"]}}),
            ),
            linux,
        ),
        (
            "network-none".into(),
            policy(json!({"network": {"allowed_domains": []}})),
            linux,
        ),
        (
            "network-lock".into(),
            policy(
                json!({"network": {"denied_domains": ["pastebin.com"], "managed_only": true, "strict": true}}),
            ),
            linux,
        ),
        (
            "sandbox".into(),
            policy(
                json!({"sandbox": {"enabled": true, "fail_if_unavailable": true, "allow_unsandboxed_commands": false, "auto_allow_bash": false}}),
            ),
            linux,
        ),
        (
            "sandbox-permissive-values".into(),
            policy(
                json!({"sandbox": {"enabled": false, "allow_unsandboxed_commands": true, "auto_allow_bash": true}}),
            ),
            linux,
        ),
        (
            "mcp".into(),
            policy(
                json!({"mcp": {"allowed": [{"name": "github"}, {"url": "https://mcp.example.com/*"}, {"command": ["npx", "-y", "@acme/mcp"]}], "denied": [{"name": "filesystem"}, {"name": "claude.ai Slack"}, {"command": ["npx", "-y", "@modelcontextprotocol/server-filesystem"]}], "managed_only": true}}),
            ),
            linux,
        ),
        (
            "mcp-managed-only".into(),
            policy(json!({"mcp": {"managed_only": true}})),
            linux,
        ),
        (
            "models".into(),
            policy(
                json!({"models": {"available": ["sonnet", "haiku"], "enforce": true, "default": "sonnet"}}),
            ),
            linux,
        ),
        (
            "hooks".into(),
            policy(
                json!({"hooks": {"events": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/bin/palisade-agent hook"}]}]}, "managed_only": true, "allowed_http_urls": ["https://audit.example.com/*"]}}),
            ),
            linux,
        ),
        (
            "telemetry".into(),
            policy(
                json!({"telemetry": {"endpoint": "https://otel.example.com:4318", "protocol": "http/protobuf", "headers": {"x-team": "platform eng"}, "resource_attributes": {"org": "acme"}, "log_user_prompts": false}}),
            ),
            linux,
        ),
        (
            "versions".into(),
            policy(
                json!({"claude_code": {"required_minimum_version": "2.1.240", "required_maximum_version": "3.0.0"}}),
            ),
            linux,
        ),
        (
            "credentials".into(),
            policy(
                json!({"credentials": {"block_personal_keys": true, "force_login_org_uuid": ["123e4567-e89b-12d3-a456-426614174000"]}}),
            ),
            linux,
        ),
        (
            "plugins".into(),
            policy(
                json!({"plugins": {"known_marketplaces": [{"source": "github", "repo": "acme/plugins"}], "blocked_marketplaces": [{"source": "github", "repo": "evil/plugins"}], "disable_sideload_flags": true, "only_customization": ["hooks", "agents"]}}),
            ),
            linux,
        ),
        (
            "skills".into(),
            policy(
                json!({"skills": {"allowed": ["pdf"], "disable_bundled": true, "disable_shell_execution": true}}),
            ),
            linux,
        ),
        (
            "skills-none".into(),
            policy(json!({"skills": {"allowed": []}})),
            linux,
        ),
        (
            "features".into(),
            policy(
                json!({"features": {"disable_remote_control": true, "disable_workflows": true, "disable_artifact": true, "disable_agent_view": true, "disable_claude_ai_connectors": true, "disable_channels": true}}),
            ),
            linux,
        ),
        (
            "session".into(),
            policy(
                json!({"session": {"cleanup_period_days": 14, "announcements": ["Claude Code is governed by Palisade."], "claude_md": "Never paste customer data."}}),
            ),
            linux,
        ),
        (
            "v1-file".into(),
            policy(
                json!({"blocked_tools": ["Bash", "Task"], "security_level": "moderate", "blocked_write_paths": ["/etc", "C:\\Windows"], "allowed_skills": ["pdf"], "blocked_mcp_servers": ["filesystem"], "allowed_web_domains": ["Docs.rs"]}),
            ),
            linux,
        ),
        ("lockdown".into(), lockdown(), linux),
        (
            "telemetry-groups".into(),
            policy(
                json!({"telemetry": {"endpoint": "https://otel.example.com", "include_groups": true}}),
            ),
            linux,
        ),
    ];
    for level in SecurityLevel::ALL {
        out.push((
            format!("level-{level}"),
            policy(json!({"security_level": level.as_str()})),
            linux,
        ));
    }
    out
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

#[test]
fn every_case_matches_its_golden_file() {
    let bless = std::env::var_os("PALISADE_BLESS").is_some();
    let mut failures = Vec::new();
    for (name, p, os) in cases() {
        // The merge adds the level's bundle (and the groups): render what an agent receives.
        let member_of = Policy::new();
        let groups: Vec<GroupPolicy<'_>> = if name == "telemetry-groups" {
            ["Platform Eng", "contractors;eu"]
                .iter()
                .map(|g| GroupPolicy {
                    group: g,
                    policy: &member_of,
                })
                .collect()
        } else {
            Vec::new()
        };
        let p = palisade_policy::effective(&p, &groups);
        let opts = RenderOptions {
            api_key_helper: Some(HELPER.into()),
            os,
            ..RenderOptions::default()
        };
        let bytes = render_bytes(&p, &opts);
        let path = golden_dir().join(format!("{name}.json"));
        if bless {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        match std::fs::read(&path) {
            Ok(want) if want == bytes => {}
            Ok(_) => failures.push(format!(
                "{name}: differs\n{}",
                String::from_utf8_lossy(&bytes)
            )),
            Err(e) => failures.push(format!(
                "{name}: {}: {e} (PALISADE_BLESS=1 writes it)",
                path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every key of the table appears in at least one case, so none renders untested.
#[test]
fn every_key_has_a_case() {
    let cases = cases();
    for key in palisade_policy::keys::KEYS {
        assert!(
            cases.iter().any(|(_, p, _)| p.get(key.name).is_some()),
            "no golden case sets {}",
            key.name
        );
    }
}
