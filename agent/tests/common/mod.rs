//! Policies and render options shared by the settings tests (golden files and schema checks).
#![allow(dead_code)]

use palisade_agent::settings::DEFAULT_API_KEY_HELPER_TTL_MS;
use palisade_agent::{Policy, RenderOptions, SecurityLevel, TargetOs};

pub const HELPER: &str = "/usr/local/bin/palisade-agent api-key";
pub const HELPER_WINDOWS: &str = r#""C:\Program Files\Palisade\palisade-agent.exe" api-key"#;

pub fn opts(os: TargetOs, helper: bool) -> RenderOptions {
    let command = if os == TargetOs::Windows {
        HELPER_WINDOWS
    } else {
        HELPER
    };
    RenderOptions {
        api_key_helper: helper.then(|| command.to_owned()),
        api_key_helper_ttl_ms: DEFAULT_API_KEY_HELPER_TTL_MS,
        os,
        announcement: None,
    }
}

/// The same explicit rules at every level, so the golden files differ only by the level keys.
pub fn level_policy(level: SecurityLevel) -> Policy {
    Policy {
        blocked_tools: vec!["WebFetch".into(), "Bash".into()],
        security_level: level,
        blocked_write_paths: vec!["/home/dev/.ssh".into(), "/etc/claude-code".into()],
        ..Policy::default()
    }
}

/// Every field set, with duplicates, mixed case and unsorted input.
pub fn full_policy() -> Policy {
    Policy {
        blocked_tools: vec![
            "Bash".into(),
            "Agent".into(),
            "mcp__github__delete_repository".into(),
            "Bash".into(),
        ],
        security_level: SecurityLevel::Strict,
        blocked_write_paths: vec![
            "/home/dev/.ssh/".into(),
            "/etc/claude-code".into(),
            "C:\\Users\\dev\\.ssh".into(),
            "C:\\Program Files\\ClaudeCode".into(),
        ],
        allowed_skills: Some(vec!["pdf".into(), "acme-tools:review".into()]),
        blocked_mcp_servers: vec!["puppeteer".into(), "filesystem".into()],
        allowed_web_domains: Some(vec![
            "docs.rs".into(),
            "*.acme.example".into(),
            "Crates.io".into(),
        ]),
    }
}

/// (golden file stem, policy, options).
pub fn golden_cases() -> Vec<(&'static str, Policy, RenderOptions)> {
    vec![
        (
            "minimal",
            level_policy(SecurityLevel::Minimal),
            opts(TargetOs::Linux, false),
        ),
        (
            "moderate",
            level_policy(SecurityLevel::Moderate),
            opts(TargetOs::Linux, false),
        ),
        (
            "strict",
            level_policy(SecurityLevel::Strict),
            opts(TargetOs::Linux, false),
        ),
        (
            "paranoid",
            level_policy(SecurityLevel::Paranoid),
            opts(TargetOs::Linux, false),
        ),
        ("lockdown", Policy::lockdown(), opts(TargetOs::Linux, true)),
        ("full", full_policy(), opts(TargetOs::Linux, true)),
        ("full-macos", full_policy(), opts(TargetOs::MacOs, true)),
        ("full-windows", full_policy(), opts(TargetOs::Windows, true)),
    ]
}

/// Many combinations of fields, levels, platforms and options.
pub fn sweep() -> Vec<(Policy, RenderOptions)> {
    let mut out = Vec::new();
    for (_, p, o) in golden_cases() {
        out.push((p, o));
    }
    let skills = [None, Some(vec![]), Some(vec!["pdf".to_owned()])];
    let domains = [None, Some(vec![]), Some(vec!["docs.rs".to_owned()])];
    for level in SecurityLevel::ALL {
        for os in [TargetOs::Linux, TargetOs::MacOs, TargetOs::Windows] {
            for helper in [false, true] {
                for s in &skills {
                    for d in &domains {
                        let mut p = full_policy();
                        p.security_level = level;
                        p.allowed_skills = s.clone();
                        p.allowed_web_domains = d.clone();
                        out.push((p, opts(os, helper)));
                        let mut lock = Policy::lockdown();
                        lock.security_level = level;
                        lock.blocked_write_paths = full_policy().blocked_write_paths;
                        out.push((lock, opts(os, helper)));
                    }
                }
            }
        }
    }
    out
}
