//! Renders a [`Policy`] into the content of the agent's Claude Code drop-in file,
//! `managed-settings.d/50-palisade.json` (long form, with the reasons: `agent/SETTINGS.md`).
//!
//! The output is deterministic: object keys sorted, every array sorted and de-duplicated, so
//! the same policy always gives the same bytes and [`crate::atomic::write_if_changed`] only
//! rewrites the file when the policy really changed. Only keys listed in
//! `shared/reference/claude-code-settings.md` are emitted, with the value types it gives.
//! `forceLoginOrgUUID` is never emitted (it would block the `apiKeyHelper` session).
//!
//! # What each policy field becomes
//!
//! | policy | settings |
//! |---|---|
//! | `blocked_tools: [T]` | `permissions.deny: [T]`; `Agent` and `Task` (aliases) always together |
//! | `blocked_write_paths: [/a/b]` | `permissions.deny: ["Edit(//a/b)", "Edit(//a/b/**)"]` and `sandbox.filesystem.denyWrite: ["/a/b"]` |
//! | `blocked_write_paths: [C:\a\b]` (Windows target) | `Edit(//c/a/b)`, `Edit(//c/a/b/**)`; `denyWrite: ["C:\\a\\b"]` |
//! | `allowed_skills: None` | nothing |
//! | `allowed_skills: Some([x, ..])` | `strictPluginOnlyCustomization: ["skills"]` |
//! | `allowed_skills: Some([])` | the same plus `Skill` in `permissions.deny` |
//! | `blocked_mcp_servers: [s]` | `deniedMcpServers: [{"serverName": s}]` and `mcp__s__*` in `permissions.deny` |
//! | `allowed_web_domains: None` | nothing |
//! | `allowed_web_domains: Some([d, ..])` | `sandbox.network.allowedDomains: [d, ..]` (lowercased) |
//! | `allowed_web_domains: Some([])` | `sandbox.network.allowedDomains: []` and `WebFetch` in `permissions.deny` |
//! | every known tool and `mcp__*` blocked ([`Policy::lockdown`]) | also `permissions.defaultMode: "dontAsk"` |
//! | `RenderOptions::api_key_helper: Some(cmd)` | `apiKeyHelper: cmd`, `env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS: "<ttl>"` |
//!
//! Write paths are never rendered as `Write(path)` rules: Claude Code accepts them but never
//! consults them. Rules use the permission-rule convention (`//abs` is absolute, Windows drive
//! `C:` becomes `/c`); `denyWrite` uses the sandbox convention (a plain absolute path). The
//! agent cannot know whether a path is a file or a directory, so both `Edit(//p)` and
//! `Edit(//p/**)` are rendered. A path of the other platform's flavour (`C:\x` on Linux or
//! macOS, `/x` on Windows) is left out ([`inapplicable_write_paths`] lists them).
//!
//! # Security levels (cumulative)
//!
//! | level | keys added to the lower level |
//! |---|---|
//! | minimal | none: only the explicit rules above |
//! | moderate | `permissions.disableBypassPermissionsMode: "disable"` |
//! | strict | `allowManagedPermissionRulesOnly: true` |
//! | paranoid | `sandbox.enabled: true`, `sandbox.failIfUnavailable: true`, `sandbox.allowUnsandboxedCommands: false`, `allowManagedHooksOnly: true`, `allowManagedMcpServersOnly: true`, `strictKnownMarketplaces: []`, `disableSideloadFlags: true` |
//!
//! # Limits (what a user could still do)
//!
//! - Rules are evaluated deny, then ask, then allow, so nothing here is an allow-list with
//!   exceptions. `allowed_skills: Some([x])` cannot let `x` through while denying the rest:
//!   it removes every skill that does not come from a plugin (`~/.claude/skills`,
//!   `.claude/skills`, command folders), **including** `x` if it lives there. Skills from
//!   installed plugins remain usable whether listed or not; only paranoid's
//!   `strictKnownMarketplaces: []` stops new marketplaces. An allowed skill must therefore be
//!   shipped as a plugin. Skills are instructions: nothing stops the model from following the
//!   same text found in a file it may read.
//! - `sandbox.filesystem.denyWrite` and `sandbox.network.allowedDomains` only act on commands
//!   that run inside the sandbox. Below paranoid the sandbox is not switched on by this file
//!   (the user may switch it on or off), so subprocesses (`Bash`) can still write to blocked
//!   paths and reach other domains. `WebFetch` runs in Claude Code, not in the sandbox:
//!   a non-empty domain list does not restrict it (only the empty list denies it).
//! - Path rules match the path as written. Another spelling of the same file (a symlink, a
//!   different case on a case-insensitive macOS or Windows volume, `/private/tmp` vs `/tmp`)
//!   may escape the `Edit` rules; the sandbox, when on, is the backstop.
//! - Claude Code's sandbox is not available on native Windows: there `denyWrite` has no
//!   effect, and paranoid's `sandbox.failIfUnavailable: true` stops Claude Code from starting.
//! - `allowManagedMcpServersOnly` restricts servers to a managed `allowedMcpServers` list,
//!   which Palisade does not emit; its effect depends on other managed sources.
//! - Array keys are concatenated with other file-source drop-ins: `strictKnownMarketplaces: []`
//!   only locks marketplaces when no other managed file lists one. Scalars are last-wins, so a
//!   drop-in sorting after `50-palisade.json` can override them (writing one needs admin
//!   rights). A higher managed source (server-managed, MDM) makes Claude Code ignore this file.
//! - Invalid entries are left out of the output (Claude Code would drop them one by one);
//!   for deny lists that is weaker, so call [`Policy::validate`] (or use [`try_render`]) and
//!   refuse the policy. For the allow-lists it is stricter: a list whose entries are all
//!   invalid renders like an empty list.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::policy::{Policy, PolicyError, SecurityLevel};

/// Built-in tool names Claude Code accepts in permission rules (`Task` is an alias of `Agent`).
pub const KNOWN_TOOLS: &[&str] = &[
    "Agent",
    "Bash",
    "Edit",
    "Glob",
    "Grep",
    "LSP",
    "NotebookEdit",
    "PowerShell",
    "Read",
    "Skill",
    "Task",
    "WebFetch",
    "WebSearch",
    "Write",
];

/// The rule that denies every MCP tool.
pub const ALL_MCP_TOOLS: &str = "mcp__*";

/// Directory, next to `managed-settings.json`, that holds drop-in files.
pub const DROP_IN_DIR: &str = "managed-settings.d";

/// The agent's own drop-in file name inside [`DROP_IN_DIR`].
pub const DROP_IN_FILE: &str = "50-palisade.json";

/// Environment variable that sets how long Claude Code caches the `apiKeyHelper` output.
pub const API_KEY_HELPER_TTL_ENV: &str = "CLAUDE_CODE_API_KEY_HELPER_TTL_MS";

/// A short helper TTL, so that running sessions re-ask within a minute after a wipe.
pub const DEFAULT_API_KEY_HELPER_TTL_MS: u64 = 60_000;

/// `permissions.defaultMode` of a policy that denies every tool: anything not pre-approved is
/// denied instead of prompting.
pub const LOCKDOWN_DEFAULT_MODE: &str = "dontAsk";

/// The platform the settings are rendered for (it decides how paths are written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetOs {
    /// Linux and WSL.
    Linux,
    /// macOS.
    MacOs,
    /// Native Windows.
    Windows,
}

impl TargetOs {
    /// The platform this binary was built for.
    pub fn current() -> TargetOs {
        if cfg!(windows) {
            TargetOs::Windows
        } else if cfg!(target_os = "macos") {
            TargetOs::MacOs
        } else {
            TargetOs::Linux
        }
    }
}

/// Rendering inputs that are not part of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Shell command Claude Code runs to get the API key, for example
    /// `/usr/local/bin/palisade-agent api-key`. `None` (or blank): no `apiKeyHelper`.
    pub api_key_helper: Option<String>,
    /// How long Claude Code may reuse the helper's output, in milliseconds.
    pub api_key_helper_ttl_ms: u64,
    /// Platform the file is written for.
    pub os: TargetOs,
    /// A line Claude Code shows at start (`companyAnnouncements`): set while the device waits
    /// for its person to confirm it, with the page to do so.
    pub announcement: Option<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            api_key_helper: None,
            api_key_helper_ttl_ms: DEFAULT_API_KEY_HELPER_TTL_MS,
            os: TargetOs::current(),
            announcement: None,
        }
    }
}

/// `<settings_dir>/managed-settings.d/50-palisade.json`.
pub fn drop_in_path(settings_dir: &Path) -> PathBuf {
    settings_dir.join(DROP_IN_DIR).join(DROP_IN_FILE)
}

// ---------------------------------------------------------------------------------------------
// Validation (the control plane mirrors these to give operators clear errors).

/// Checks a `blocked_tools` entry: a tool of [`KNOWN_TOOLS`], or an MCP pattern `mcp__*`,
/// `mcp__<server>__*`, `mcp__<server>__<tool>`. Specifiers (`Bash(rm *)`) are not accepted.
pub fn validate_tool_name(name: &str) -> Result<(), String> {
    if KNOWN_TOOLS.contains(&name) {
        return Ok(());
    }
    if let Some(rest) = name.strip_prefix("mcp__") {
        return validate_mcp_pattern(name, rest);
    }
    if let Some((tool, _)) = name.split_once('(') {
        if matches!(tool, "Write" | "NotebookEdit" | "MultiEdit") {
            return Err(format!(
                "`{name}`: Claude Code never consults {tool}(path) rules; \
                 list the path in blocked_write_paths instead"
            ));
        }
        return Err(format!(
            "`{name}`: blocked_tools takes tool names without a (specifier)"
        ));
    }
    if let Some(known) = KNOWN_TOOLS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "unknown tool `{name}` (did you mean `{known}`? tool names are case-sensitive)"
        ));
    }
    Err(format!(
        "unknown tool `{name}` (expected one of {}, or mcp__*, mcp__<server>__*, mcp__<server>__<tool>)",
        KNOWN_TOOLS.join(", ")
    ))
}

fn validate_mcp_pattern(name: &str, rest: &str) -> Result<(), String> {
    if rest == "*" {
        return Ok(());
    }
    let Some((server, tool)) = rest.split_once("__") else {
        return Err(format!(
            "`{name}`: write mcp__<server>__* for every tool of a server, or mcp__* for all"
        ));
    };
    validate_mcp_server_name(server).map_err(|e| format!("`{name}`: {e}"))?;
    let tool_ok = tool == "*"
        || (!tool.is_empty()
            && tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    if tool_ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}`: the MCP tool part must be `*` or letters, digits, `_` and `-`"
        ))
    }
}

/// Checks an MCP server name: letters, digits, `_` and `-`, without `__` and not starting
/// or ending with `_` (so that `mcp__<server>__<tool>` stays unambiguous).
pub fn validate_mcp_server_name(server: &str) -> Result<(), String> {
    if server.is_empty() {
        return Err("empty MCP server name".to_owned());
    }
    if server.len() > 128 {
        return Err(format!(
            "MCP server name `{server}` is longer than 128 bytes"
        ));
    }
    if !server
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "MCP server name `{server}` may only contain letters, digits, `_` and `-`"
        ));
    }
    if server.contains("__") || server.starts_with('_') || server.ends_with('_') {
        return Err(format!(
            "MCP server name `{server}` must not contain `__` or start or end with `_`"
        ));
    }
    Ok(())
}

/// Checks a skill name: 1 to 128 letters, digits, `-`, `_`, `.` or `:` (plugin skills are
/// `plugin:skill`).
pub fn validate_skill_name(skill: &str) -> Result<(), String> {
    if skill.is_empty() {
        return Err("empty skill name".to_owned());
    }
    if skill.len() > 128 {
        return Err(format!("skill name `{skill}` is longer than 128 bytes"));
    }
    if !skill
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!(
            "skill name `{skill}` may only contain letters, digits, `-`, `_`, `.` and `:`"
        ));
    }
    Ok(())
}

/// Checks a web domain: a host name (`docs.rs`), optionally with a `*.` wildcard prefix; no
/// scheme, port or path. Case does not matter (rendered lowercase).
pub fn validate_domain(domain: &str) -> Result<(), String> {
    if domain.contains("://") {
        return Err(format!(
            "`{domain}`: give the domain only, without a scheme"
        ));
    }
    if domain.contains('/') {
        return Err(format!("`{domain}`: give the domain only, without a path"));
    }
    if domain.contains(':') {
        return Err(format!("`{domain}`: give the domain only, without a port"));
    }
    let host = domain.strip_prefix("*.").unwrap_or(domain);
    if host.is_empty() || host.len() > 253 {
        return Err(format!("`{domain}`: not a domain name"));
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "`{domain}`: not a domain name (labels of letters, digits and `-`; \
                 a wildcard only as a leading `*.`)"
            ));
        }
    }
    Ok(())
}

/// Checks a `blocked_write_paths` entry: an absolute Unix path (`/a/b`) or Windows path
/// (`C:\a\b` or `C:/a/b`), without `.`/`..` components, glob characters or surrounding
/// whitespace.
pub fn validate_write_path(path: &str) -> Result<(), String> {
    parse_write_path(path).map(|_| ())
}

/// An absolute path split into components.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AbsPath {
    Unix(Vec<String>),
    Windows { drive: char, parts: Vec<String> },
}

fn parse_write_path(raw: &str) -> Result<AbsPath, String> {
    if raw.is_empty() {
        return Err("empty path".to_owned());
    }
    if raw.trim() != raw {
        return Err(format!("`{raw}`: leading or trailing whitespace"));
    }
    if raw.chars().any(char::is_control) {
        return Err(format!("`{raw}`: control characters are not allowed"));
    }
    if raw.starts_with("\\\\") {
        return Err(format!(
            "`{raw}`: UNC and device paths are not supported; use a drive path like C:\\dir"
        ));
    }
    let bytes = raw.as_bytes();
    let (drive, body, windows) = if bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
    {
        if bytes.len() == 2 || !matches!(bytes[2], b'\\' | b'/') {
            return Err(format!(
                "`{raw}`: drive-relative path; write it absolute, like C:\\dir"
            ));
        }
        (char::from(bytes[0]).to_ascii_uppercase(), &raw[2..], true)
    } else if raw.starts_with('/') {
        ('/', raw, false)
    } else {
        return Err(format!(
            "`{raw}`: must be an absolute path (/dir or C:\\dir); relative and ~ paths are not supported"
        ));
    };

    let separators: &[char] = if windows { &['/', '\\'] } else { &['/'] };
    let mut parts = Vec::new();
    for part in body.split(separators).filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(format!("`{raw}`: `.` and `..` components are not allowed"));
        }
        if part.contains(['*', '?', '[', ']']) {
            return Err(format!(
                "`{raw}`: glob characters (* ? [ ]) are not supported in blocked paths"
            ));
        }
        if !windows && part.contains('\\') {
            return Err(format!(
                "`{raw}`: backslashes are not allowed in a Unix path"
            ));
        }
        if windows && part.contains(['<', '>', ':', '"', '|']) {
            return Err(format!(
                "`{raw}`: characters < > : \" | are not valid in a Windows path"
            ));
        }
        parts.push(part.to_owned());
    }
    Ok(if windows {
        AbsPath::Windows { drive, parts }
    } else {
        AbsPath::Unix(parts)
    })
}

impl AbsPath {
    fn applies_to(&self, os: TargetOs) -> bool {
        match self {
            AbsPath::Unix(_) => os != TargetOs::Windows,
            AbsPath::Windows { .. } => os == TargetOs::Windows,
        }
    }

    /// `Edit(...)` deny rules: the path itself and everything under it.
    fn edit_rules(&self) -> Vec<String> {
        let base = match self {
            AbsPath::Unix(parts) if parts.is_empty() => return vec!["Edit(//**)".to_owned()],
            AbsPath::Unix(parts) => format!("//{}", parts.join("/")),
            AbsPath::Windows { drive, parts } => {
                let mut s = format!("//{}", drive.to_ascii_lowercase());
                for p in parts {
                    s.push('/');
                    s.push_str(p);
                }
                s
            }
        };
        vec![format!("Edit({base})"), format!("Edit({base}/**)")]
    }

    /// The plain absolute path, as the sandbox expects it.
    fn sandbox_path(&self) -> String {
        match self {
            AbsPath::Unix(parts) => format!("/{}", parts.join("/")),
            AbsPath::Windows { drive, parts } => format!("{drive}:\\{}", parts.join("\\")),
        }
    }
}

/// The `blocked_write_paths` entries that are valid but written for the other platform
/// (a `C:\` path on Linux or macOS, a `/` path on Windows), which [`render`] leaves out.
pub fn inapplicable_write_paths(policy: &Policy, os: TargetOs) -> Vec<String> {
    policy
        .blocked_write_paths
        .iter()
        .filter(|p| matches!(parse_write_path(p), Ok(parsed) if !parsed.applies_to(os)))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// [`Policy::validate`], then [`render`].
pub fn try_render(policy: &Policy, opts: &RenderOptions) -> Result<Value, PolicyError> {
    policy.validate()?;
    Ok(render(policy, opts))
}

/// The drop-in file content for `policy` (see the module documentation for the mapping).
/// Entries that fail validation are left out; validate first.
pub fn render(policy: &Policy, opts: &RenderOptions) -> Value {
    let mut root = Map::new();
    let mut permissions = Map::new();
    let mut sandbox = Map::new();
    let mut sandbox_filesystem = Map::new();
    let mut sandbox_network = Map::new();
    let mut deny: BTreeSet<String> = BTreeSet::new();

    // Blocked tools.
    for tool in &policy.blocked_tools {
        if validate_tool_name(tool).is_err() {
            continue;
        }
        deny.insert(tool.clone());
        // Agent and Task are one tool under two names: deny both.
        match tool.as_str() {
            "Agent" => {
                deny.insert("Task".to_owned());
            }
            "Task" => {
                deny.insert("Agent".to_owned());
            }
            _ => {}
        }
    }

    // Blocked MCP servers.
    let servers: BTreeSet<&str> = policy
        .blocked_mcp_servers
        .iter()
        .map(String::as_str)
        .filter(|s| validate_mcp_server_name(s).is_ok())
        .collect();
    for server in &servers {
        deny.insert(format!("mcp__{server}__*"));
    }
    if !servers.is_empty() {
        let entries = servers.iter().map(|s| json!({ "serverName": s })).collect();
        root.insert("deniedMcpServers".to_owned(), Value::Array(entries));
    }

    // Blocked write paths.
    let mut deny_write: BTreeSet<String> = BTreeSet::new();
    for raw in &policy.blocked_write_paths {
        let Ok(path) = parse_write_path(raw) else {
            continue;
        };
        if !path.applies_to(opts.os) {
            continue;
        }
        deny.extend(path.edit_rules());
        deny_write.insert(path.sandbox_path());
    }
    if !deny_write.is_empty() {
        sandbox_filesystem.insert("denyWrite".to_owned(), string_array(deny_write));
    }

    // Allowed skills.
    if let Some(skills) = &policy.allowed_skills {
        root.insert(
            "strictPluginOnlyCustomization".to_owned(),
            json!(["skills"]),
        );
        if !skills.iter().any(|s| validate_skill_name(s).is_ok()) {
            deny.insert("Skill".to_owned());
        }
    }

    // Allowed web domains.
    if let Some(domains) = &policy.allowed_web_domains {
        let domains: BTreeSet<String> = domains
            .iter()
            .filter(|d| validate_domain(d).is_ok())
            .map(|d| d.to_ascii_lowercase())
            .collect();
        if domains.is_empty() {
            deny.insert("WebFetch".to_owned());
        }
        sandbox_network.insert("allowedDomains".to_owned(), string_array(domains));
    }

    // Security level (cumulative).
    let level = policy.security_level;
    if level >= SecurityLevel::Moderate {
        permissions.insert("disableBypassPermissionsMode".to_owned(), json!("disable"));
    }
    if level >= SecurityLevel::Strict {
        root.insert("allowManagedPermissionRulesOnly".to_owned(), json!(true));
    }
    if level >= SecurityLevel::Paranoid {
        sandbox.insert("enabled".to_owned(), json!(true));
        sandbox.insert("failIfUnavailable".to_owned(), json!(true));
        sandbox.insert("allowUnsandboxedCommands".to_owned(), json!(false));
        root.insert("allowManagedHooksOnly".to_owned(), json!(true));
        root.insert("allowManagedMcpServersOnly".to_owned(), json!(true));
        root.insert("strictKnownMarketplaces".to_owned(), json!([]));
        root.insert("disableSideloadFlags".to_owned(), json!(true));
    }

    // Lockdown: nothing may run, not even what another scope pre-approved.
    if policy.denies_every_tool() {
        permissions.insert("defaultMode".to_owned(), json!(LOCKDOWN_DEFAULT_MODE));
    }

    // API key helper.
    if let Some(command) = opts
        .api_key_helper
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        root.insert("apiKeyHelper".to_owned(), json!(command));
        root.insert(
            "env".to_owned(),
            json!({ API_KEY_HELPER_TTL_ENV: opts.api_key_helper_ttl_ms.to_string() }),
        );
    }

    if !deny.is_empty() {
        permissions.insert("deny".to_owned(), string_array(deny));
    }
    if !permissions.is_empty() {
        root.insert("permissions".to_owned(), Value::Object(permissions));
    }
    if !sandbox_filesystem.is_empty() {
        sandbox.insert("filesystem".to_owned(), Value::Object(sandbox_filesystem));
    }
    if !sandbox_network.is_empty() {
        sandbox.insert("network".to_owned(), Value::Object(sandbox_network));
    }
    if !sandbox.is_empty() {
        root.insert("sandbox".to_owned(), Value::Object(sandbox));
    }
    if let Some(text) = opts
        .announcement
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        root.insert(
            "companyAnnouncements".to_owned(),
            Value::Array(vec![Value::String(text.to_owned())]),
        );
    }
    sort_keys(Value::Object(root))
}

/// [`render`] as pretty-printed JSON (two-space indent) with a trailing newline.
pub fn render_bytes(policy: &Policy, opts: &RenderOptions) -> Vec<u8> {
    // `{:#}` is serde_json's infallible pretty printer.
    let mut text = format!("{:#}", render(policy, opts));
    text.push('\n');
    text.into_bytes()
}

fn string_array(items: BTreeSet<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// Rebuilds every object with its keys in sorted order (the workspace enables serde_json's
/// `preserve_order`, so insertion order would otherwise leak into the output).
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux() -> RenderOptions {
        RenderOptions {
            api_key_helper: None,
            api_key_helper_ttl_ms: DEFAULT_API_KEY_HELPER_TTL_MS,
            os: TargetOs::Linux,
            announcement: None,
        }
    }

    #[test]
    fn an_announcement_becomes_company_announcements() {
        let policy = Policy::default();
        let plain = render(&policy, &linux());
        assert!(plain.get("companyAnnouncements").is_none());
        let opts = RenderOptions {
            announcement: Some("confirm at https://cp/x".into()),
            ..linux()
        };
        assert_eq!(
            render(&policy, &opts)["companyAnnouncements"],
            serde_json::json!(["confirm at https://cp/x"])
        );
    }

    fn deny_of(v: &Value) -> Vec<String> {
        v["permissions"]["deny"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn tool_names() {
        for ok in [
            "Bash",
            "PowerShell",
            "Read",
            "Edit",
            "Write",
            "Glob",
            "Grep",
            "NotebookEdit",
            "WebFetch",
            "WebSearch",
            "Skill",
            "Agent",
            "Task",
            "LSP",
            "mcp__*",
            "mcp__github__*",
            "mcp__github__create_issue",
            "mcp__my-server__x",
        ] {
            assert_eq!(validate_tool_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "bash",
            "Shell",
            "MultiEdit",
            "Bash(rm *)",
            "mcp__",
            "mcp__github",
            "mcp____x",
            "mcp__a__",
            "mcp__a b__*",
            "mcp__a__b c",
        ] {
            assert!(validate_tool_name(bad).is_err(), "{bad} accepted");
        }
        let write = validate_tool_name("Write(/etc/**)").unwrap_err();
        assert!(write.contains("blocked_write_paths"), "{write}");
        let case = validate_tool_name("webfetch").unwrap_err();
        assert!(case.contains("did you mean `WebFetch`"), "{case}");
    }

    #[test]
    fn write_paths() {
        for ok in [
            "/",
            "/etc",
            "/etc/",
            "//etc//x",
            "/home/a b/(x)",
            "C:\\",
            "C:\\Users\\x",
            "c:/Program Files (x86)/App",
        ] {
            assert_eq!(validate_write_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "etc",
            "~/x",
            "./x",
            "/a/../b",
            "/a/./b",
            "/a/*",
            "/a/b?",
            "/a[1]",
            "/a\\b",
            " /a",
            "/a ",
            "/a\nb",
            "C:",
            "C:x",
            "\\\\server\\share",
            "C:\\a|b",
        ] {
            assert!(validate_write_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn domains_skills_servers() {
        for ok in ["docs.rs", "*.example.com", "LOCALHOST", "a-b.c0"] {
            assert_eq!(validate_domain(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "https://x.com",
            "x.com/a",
            "x.com:443",
            "*.",
            "a..b",
            "-a.com",
            "a*.com",
            "*",
        ] {
            assert!(validate_domain(bad).is_err(), "{bad:?} accepted");
        }
        for ok in ["pdf", "my-plugin:review", "a_b.c"] {
            assert_eq!(validate_skill_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "x*", "a(b)"] {
            assert!(validate_skill_name(bad).is_err(), "{bad:?} accepted");
        }
        for ok in ["github", "my_server", "a-b"] {
            assert_eq!(validate_mcp_server_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a__b", "_a", "a_", "a.b", "a b"] {
            assert!(validate_mcp_server_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn write_path_rules_unix() {
        let p = Policy {
            blocked_write_paths: vec!["/etc/secrets/".into(), "/".into(), "C:\\x".into()],
            ..Policy::default()
        };
        let v = render(&p, &linux());
        assert_eq!(
            deny_of(&v),
            vec![
                "Edit(//**)",
                "Edit(//etc/secrets)",
                "Edit(//etc/secrets/**)"
            ]
        );
        assert_eq!(
            v["sandbox"]["filesystem"]["denyWrite"],
            json!(["/", "/etc/secrets"])
        );
        assert_eq!(
            inapplicable_write_paths(&p, TargetOs::Linux),
            vec!["C:\\x".to_owned()]
        );
        assert!(!v.to_string().contains("Write("));
    }

    #[test]
    fn write_path_rules_windows() {
        let p = Policy {
            blocked_write_paths: vec!["C:\\Users\\x".into(), "d:/Data".into(), "/etc".into()],
            ..Policy::default()
        };
        let opts = RenderOptions {
            os: TargetOs::Windows,
            ..linux()
        };
        let v = render(&p, &opts);
        assert_eq!(
            deny_of(&v),
            vec![
                "Edit(//c/Users/x)",
                "Edit(//c/Users/x/**)",
                "Edit(//d/Data)",
                "Edit(//d/Data/**)"
            ]
        );
        assert_eq!(
            v["sandbox"]["filesystem"]["denyWrite"],
            json!(["C:\\Users\\x", "D:\\Data"])
        );
        assert_eq!(
            inapplicable_write_paths(&p, TargetOs::Windows),
            vec!["/etc".to_owned()]
        );
    }

    #[test]
    fn agent_and_task_go_together() {
        for name in ["Agent", "Task"] {
            let p = Policy {
                blocked_tools: vec![name.into()],
                ..Policy::default()
            };
            assert_eq!(deny_of(&render(&p, &linux())), vec!["Agent", "Task"]);
        }
    }

    #[test]
    fn skills() {
        let some = Policy {
            allowed_skills: Some(vec!["pdf".into()]),
            ..Policy::default()
        };
        let v = render(&some, &linux());
        assert_eq!(v["strictPluginOnlyCustomization"], json!(["skills"]));
        assert!(deny_of(&v).is_empty());

        let none = Policy {
            allowed_skills: Some(vec![]),
            ..Policy::default()
        };
        let v = render(&none, &linux());
        assert_eq!(v["strictPluginOnlyCustomization"], json!(["skills"]));
        assert_eq!(deny_of(&v), vec!["Skill"]);

        // An allow-list whose entries are all invalid fails closed.
        let bad = Policy {
            allowed_skills: Some(vec!["not a skill".into()]),
            ..Policy::default()
        };
        assert_eq!(deny_of(&render(&bad, &linux())), vec!["Skill"]);

        assert_eq!(render(&Policy::default(), &linux()), json!({}));
    }

    #[test]
    fn web_domains() {
        let p = Policy {
            allowed_web_domains: Some(vec!["Docs.RS".into(), "docs.rs".into(), "*.a.com".into()]),
            ..Policy::default()
        };
        let v = render(&p, &linux());
        assert_eq!(
            v["sandbox"]["network"]["allowedDomains"],
            json!(["*.a.com", "docs.rs"])
        );
        assert!(deny_of(&v).is_empty());

        let p = Policy {
            allowed_web_domains: Some(vec![]),
            ..Policy::default()
        };
        let v = render(&p, &linux());
        assert_eq!(v["sandbox"]["network"]["allowedDomains"], json!([]));
        assert_eq!(deny_of(&v), vec!["WebFetch"]);
    }

    #[test]
    fn mcp_servers() {
        let p = Policy {
            blocked_mcp_servers: vec!["zeta".into(), "github".into(), "github".into()],
            ..Policy::default()
        };
        let v = render(&p, &linux());
        assert_eq!(
            v["deniedMcpServers"],
            json!([{"serverName": "github"}, {"serverName": "zeta"}])
        );
        assert_eq!(deny_of(&v), vec!["mcp__github__*", "mcp__zeta__*"]);
    }

    #[test]
    fn api_key_helper() {
        let opts = RenderOptions {
            api_key_helper: Some("/usr/local/bin/palisade-agent api-key".into()),
            api_key_helper_ttl_ms: 30_000,
            ..linux()
        };
        let v = render(&Policy::default(), &opts);
        assert_eq!(v["apiKeyHelper"], "/usr/local/bin/palisade-agent api-key");
        assert_eq!(v["env"][API_KEY_HELPER_TTL_ENV], "30000");
        assert!(v.get("forceLoginOrgUUID").is_none());

        let blank = RenderOptions {
            api_key_helper: Some("  ".into()),
            ..linux()
        };
        assert_eq!(render(&Policy::default(), &blank), json!({}));
    }

    #[test]
    fn lockdown_sets_dont_ask() {
        let v = render(&Policy::lockdown(), &linux());
        assert_eq!(v["permissions"]["defaultMode"], LOCKDOWN_DEFAULT_MODE);
        let deny = deny_of(&v);
        for tool in KNOWN_TOOLS {
            assert!(deny.iter().any(|d| d == tool), "{tool} not denied");
        }
        assert!(deny.iter().any(|d| d == ALL_MCP_TOOLS));
        let partial = Policy {
            blocked_tools: vec!["Bash".into()],
            ..Policy::lockdown()
        };
        assert!(render(&partial, &linux())["permissions"]
            .get("defaultMode")
            .is_none());
    }

    #[test]
    fn output_is_canonical() {
        let a = Policy {
            blocked_tools: vec!["WebFetch".into(), "Bash".into(), "Bash".into()],
            blocked_write_paths: vec!["/b".into(), "/a".into(), "/a/".into()],
            ..Policy::default()
        };
        let b = Policy {
            blocked_tools: vec!["Bash".into(), "WebFetch".into()],
            blocked_write_paths: vec!["/a".into(), "/b".into()],
            ..Policy::default()
        };
        assert_eq!(render_bytes(&a, &linux()), render_bytes(&b, &linux()));
        let bytes = render_bytes(&a, &linux());
        assert_eq!(bytes.last(), Some(&b'\n'));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\n  \""), "{text}");
    }

    #[test]
    fn try_render_rejects_invalid() {
        let p = Policy {
            blocked_tools: vec!["Write(/etc)".into()],
            ..Policy::default()
        };
        assert!(try_render(&p, &linux()).is_err());
        assert!(try_render(&Policy::lockdown(), &linux()).is_ok());
    }

    #[test]
    fn drop_in_location() {
        assert_eq!(
            drop_in_path(Path::new("/etc/claude-code")),
            PathBuf::from("/etc/claude-code/managed-settings.d/50-palisade.json")
        );
    }
}
