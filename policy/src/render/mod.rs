//! Renders a [`Policy`] into the content of the agent's Claude Code drop-in file,
//! `managed-settings.d/50-palisade.json`. The control plane's `policy show --render` and the
//! agent call the same function, so the preview is byte for byte the file on the laptop.
//!
//! The output is deterministic (keys sorted, sets sorted) and uses only keys and value types
//! of Claude Code's managed-settings reference at [`crate::CLAUDE_CODE_REFERENCE_VERSION`].
//! Switches are written only in their restricting direction (a lock `true`, a permissive
//! switch `false`), so this file never loosens what an MDM-owned base file sets. Each key's
//! mapping is in [`crate::keys::KEYS`] (`renders`); the non-obvious ones:
//!
//! - paths: `Read(//abs)`, `Read(//abs/**)` (`Edit` for writes), `~/x`, `**/name`; a Windows
//!   drive `C:\x` becomes `//c/x`; the sandbox gets the plain path. A root (`/`, `C:\`) denies
//!   the bare tools instead, because Claude Code's `//**` matches nothing (#52123).
//! - `network.allowed_domains` also sets `allowManagedDomainsOnly` and `strictAllowlist`
//!   (otherwise the list only pre-approves hosts), and `[]` denies `WebFetch` and `WebSearch`.
//! - `mcp.denied` names also deny `mcp__<name>__*`; `mcp.managed_only` without an allowlist
//!   renders `allowedMcpServers: []` and adds `mcp` to `strictPluginOnlyCustomization` (the
//!   lock alone does nothing).
//! - `strictPluginOnlyCustomization` is `true` when all four surfaces are locked, so a later
//!   drop-in cannot narrow an MDM base file's `true`.
//! - `forceLoginOrgUUID` is left out while the agent serves a key (it blocks `apiKeyHelper`).

mod paths;

pub use paths::inapplicable_paths;

use std::collections::{BTreeMap, BTreeSet};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Map, Value};

use crate::document::Policy;
use crate::rules::mcp;
use crate::rules::names::SURFACES;
pub use crate::rules::path::TargetOs;

/// Directory, next to `managed-settings.json`, that holds drop-in files.
pub const DROP_IN_DIR: &str = "managed-settings.d";

/// The agent's own drop-in file name inside [`DROP_IN_DIR`].
pub const DROP_IN_FILE: &str = "50-palisade.json";

/// Environment variable that sets how long Claude Code caches the `apiKeyHelper` output.
pub const API_KEY_HELPER_TTL_ENV: &str = "CLAUDE_CODE_API_KEY_HELPER_TTL_MS";
/// The environment variable that points Claude Code at another API endpoint.
pub const BASE_URL_ENV: &str = "ANTHROPIC_BASE_URL";

/// A short helper TTL, so that running sessions re-ask within a minute after a wipe.
pub const DEFAULT_API_KEY_HELPER_TTL_MS: u64 = 60_000;

/// The credential variables that outrank `apiKeyHelper`; `credentials.block_personal_keys`
/// sets each to `""`, which cancels a shell export.
pub const PERSONAL_KEY_ENV: &[&str] = &["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"];

/// Rendering inputs that are not part of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Command Claude Code runs to get the API key. `None` (or blank): no `apiKeyHelper`.
    pub api_key_helper: Option<String>,
    /// How long Claude Code may reuse the helper's output, in milliseconds.
    pub api_key_helper_ttl_ms: u64,
    /// Platform the file is written for.
    pub os: TargetOs,
    /// A line Claude Code shows at start, before the policy's own announcements (the agent
    /// sets it while the device waits for its person to confirm it).
    pub announcement: Option<String>,
    /// Where Claude Code sends its API requests (`env.ANTHROPIC_BASE_URL`): the agent's local
    /// relay when the organisation keeps the key off the developer's account.
    pub base_url: Option<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            api_key_helper: None,
            api_key_helper_ttl_ms: DEFAULT_API_KEY_HELPER_TTL_MS,
            os: TargetOs::current(),
            announcement: None,
            base_url: None,
        }
    }
}

/// The settings being built: nested tables addressed by dotted paths.
#[derive(Default)]
struct Settings {
    root: Map<String, Value>,
    deny: BTreeSet<String>,
    ask: BTreeSet<String>,
    surfaces: BTreeSet<String>,
    env: BTreeMap<String, String>,
}

impl Settings {
    fn set(&mut self, path: &str, value: Value) {
        let mut table = &mut self.root;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_owned(), value);
                return;
            }
            let entry = table
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(inner) => table = inner,
                _ => return,
            }
        }
    }
}

/// The drop-in file content for `policy` (see the module documentation). The policy's values
/// are already checked ([`Policy`] holds nothing else), so every entry is rendered.
pub fn render(policy: &Policy, opts: &RenderOptions) -> Value {
    let mut s = Settings::default();
    permissions(policy, &mut s);
    paths::files(policy, opts.os, &mut s);
    network(policy, &mut s);
    sandbox(policy, &mut s);
    mcp_servers(policy, &mut s);
    rest(policy, opts, &mut s);

    if !s.deny.is_empty() {
        s.set("permissions.deny", strings(&s.deny.clone()));
    }
    if !s.ask.is_empty() {
        s.set("permissions.ask", strings(&s.ask.clone()));
    }
    if !s.surfaces.is_empty() {
        let value = if SURFACES.iter().all(|x| s.surfaces.contains(*x)) {
            Value::Bool(true)
        } else {
            strings(&s.surfaces.clone())
        };
        s.set("strictPluginOnlyCustomization", value);
    }
    if !s.env.is_empty() {
        let env: Map<String, Value> = s
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        s.set("env", Value::Object(env));
    }
    crate::value::canonical(&Value::Object(s.root))
}

/// [`render`] as the file's bytes: pretty JSON (two-space indent) and a trailing newline.
pub fn render_bytes(policy: &Policy, opts: &RenderOptions) -> Vec<u8> {
    let mut text = format!("{:#}", render(policy, opts));
    text.push('\n');
    text.into_bytes()
}

fn strings(items: &BTreeSet<String>) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn list(policy: &Policy, key: &str) -> Option<BTreeSet<String>> {
    policy
        .strings(key)
        .map(|v| v.into_iter().map(str::to_owned).collect())
}

fn permissions(policy: &Policy, s: &mut Settings) {
    for rule in list(policy, "permissions.deny").unwrap_or_default() {
        // Agent and Task are one tool under two names: deny both.
        match rule.as_str() {
            "Agent" => s.deny.insert("Task".to_owned()),
            "Task" => s.deny.insert("Agent".to_owned()),
            _ => false,
        };
        s.deny.insert(rule);
    }
    s.ask
        .extend(list(policy, "permissions.ask").unwrap_or_default());
    if let Some(allow) = list(policy, "permissions.allow") {
        s.set("permissions.allow", strings(&allow));
    }
    if let Some(mode) = policy.text("permissions.default_mode") {
        s.set("permissions.defaultMode", json!(mode));
    }
    if policy.on("permissions.disable_auto_mode") {
        // Claude Code 2.1.332 reads it at the top level (documented) and under permissions.
        s.set("disableAutoMode", json!("disable"));
    }
    if policy.on("permissions.disable_bypass_mode") {
        s.set("permissions.disableBypassPermissionsMode", json!("disable"));
    }
    if policy.on("permissions.managed_rules_only") {
        s.set("allowManagedPermissionRulesOnly", json!(true));
    }
}

fn network(policy: &Policy, s: &mut Settings) {
    if let Some(allowed) = list(policy, "network.allowed_domains") {
        if allowed.is_empty() {
            s.deny.insert("WebFetch".to_owned());
            s.deny.insert("WebSearch".to_owned());
        }
        s.set("sandbox.network.allowedDomains", strings(&allowed));
        s.set("sandbox.network.allowManagedDomainsOnly", json!(true));
        s.set("sandbox.network.strictAllowlist", json!(true));
    }
    if let Some(denied) = list(policy, "network.denied_domains") {
        for domain in &denied {
            s.deny.insert(format!("WebFetch(domain:{domain})"));
        }
        s.set("sandbox.network.deniedDomains", strings(&denied));
    }
    if policy.on("network.managed_only") {
        s.set("sandbox.network.allowManagedDomainsOnly", json!(true));
    }
    if policy.on("network.strict") {
        s.set("sandbox.network.strictAllowlist", json!(true));
    }
}

fn sandbox(policy: &Policy, s: &mut Settings) {
    if policy.on("sandbox.enabled") {
        s.set("sandbox.enabled", json!(true));
    }
    if policy.on("sandbox.fail_if_unavailable") {
        s.set("sandbox.failIfUnavailable", json!(true));
    }
    if policy.flag("sandbox.allow_unsandboxed_commands") == Some(false) {
        s.set("sandbox.allowUnsandboxedCommands", json!(false));
    }
    if policy.flag("sandbox.auto_allow_bash") == Some(false) {
        s.set("sandbox.autoAllowBashIfSandboxed", json!(false));
    }
}

fn mcp_servers(policy: &Policy, s: &mut Settings) {
    let matchers = |key: &str| -> Option<Vec<Value>> {
        policy
            .get(key)?
            .as_array()
            .map(|a| a.iter().filter_map(mcp::to_claude).collect())
    };
    let allowed = matchers("mcp.allowed");
    if let Some(allowed) = &allowed {
        s.set("allowedMcpServers", Value::Array(allowed.clone()));
    }
    if let Some(denied) = policy.get("mcp.denied").and_then(Value::as_array) {
        for name in denied
            .iter()
            .filter_map(|m| m.get("name"))
            .filter_map(Value::as_str)
        {
            if mcp::tool_server_name(name).is_ok() {
                s.deny.insert(format!("mcp__{name}__*"));
            }
        }
        s.set(
            "deniedMcpServers",
            Value::Array(denied.iter().filter_map(mcp::to_claude).collect()),
        );
    }
    if policy.on("mcp.managed_only") {
        s.set("allowManagedMcpServersOnly", json!(true));
        if allowed.is_none() {
            // The lock restricts servers to a managed allowlist and does nothing without one
            // (checked with the real client): an empty list admits none, from the user's,
            // a project's or a --mcp-config file alike; the customization lock adds plugins'.
            s.set("allowedMcpServers", json!([]));
            s.surfaces.insert("mcp".to_owned());
        }
    }
}

/// Percent-encoding for OTLP header and resource-attribute values.
const OTEL_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b',')
    .add(b'=')
    .add(b'%')
    .add(b';')
    .add(b'"');

fn key_values(policy: &Policy, key: &str) -> Option<String> {
    let map = policy.get(key)?.as_object()?;
    let pairs: Vec<String> = map
        .iter()
        .filter_map(|(k, v)| {
            v.as_str()
                .map(|v| format!("{k}={}", utf8_percent_encode(v, OTEL_VALUE)))
        })
        .collect();
    Some(pairs.join(","))
}

fn rest(policy: &Policy, opts: &RenderOptions, s: &mut Settings) {
    // Models.
    if let Some(models) = policy.strings("models.available") {
        s.set("availableModels", json!(models));
    }
    if policy.on("models.enforce") {
        s.set("enforceAvailableModels", json!(true));
    }
    if let Some(model) = policy.text("models.default") {
        s.set("model", json!(model));
    }
    // Hooks.
    if let Some(events) = policy.get("hooks.events") {
        s.set("hooks", events.clone());
    }
    if policy.on("hooks.managed_only") {
        s.set("allowManagedHooksOnly", json!(true));
    }
    if let Some(urls) = policy.strings("hooks.allowed_http_urls") {
        s.set("allowedHttpHookUrls", json!(urls));
    }
    // Telemetry.
    if let Some(endpoint) = policy.text("telemetry.endpoint") {
        for (k, v) in [
            ("CLAUDE_CODE_ENABLE_TELEMETRY", "1"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ] {
            s.env.insert(k.to_owned(), v.to_owned());
        }
    }
    if let Some(protocol) = policy.text("telemetry.protocol") {
        s.env.insert(
            "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
            protocol.to_owned(),
        );
    }
    if let Some(headers) = key_values(policy, "telemetry.headers") {
        s.env
            .insert("OTEL_EXPORTER_OTLP_HEADERS".to_owned(), headers);
    }
    if let Some(attributes) = key_values(policy, "telemetry.resource_attributes") {
        s.env
            .insert("OTEL_RESOURCE_ATTRIBUTES".to_owned(), attributes);
    }
    if policy.flag("telemetry.log_user_prompts") == Some(true) {
        s.env
            .insert("OTEL_LOG_USER_PROMPTS".to_owned(), "1".to_owned());
    }
    // The client version.
    if let Some(v) = policy.text("claude_code.required_minimum_version") {
        s.set("requiredMinimumVersion", json!(v));
    }
    if let Some(v) = policy.text("claude_code.required_maximum_version") {
        s.set("requiredMaximumVersion", json!(v));
    }
    // Credentials.
    let helper = opts
        .api_key_helper
        .as_deref()
        .filter(|c| !c.trim().is_empty());
    if policy.on("credentials.block_personal_keys") {
        for var in PERSONAL_KEY_ENV {
            s.env.insert((*var).to_owned(), String::new());
        }
    }
    if let (Some(uuids), None) = (policy.strings("credentials.force_login_org_uuid"), helper) {
        let value = match uuids.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        s.set("forceLoginOrgUUID", value);
    }
    if let Some(url) = opts.base_url.as_deref().filter(|u| !u.trim().is_empty()) {
        s.env.insert(BASE_URL_ENV.to_owned(), url.to_owned());
    }
    if let Some(command) = helper {
        s.set("apiKeyHelper", json!(command));
        s.env.insert(
            API_KEY_HELPER_TTL_ENV.to_owned(),
            opts.api_key_helper_ttl_ms.to_string(),
        );
    }
    // Plugins and skills.
    if let Some(known) = policy.get("plugins.known_marketplaces") {
        s.set("strictKnownMarketplaces", known.clone());
    }
    if let Some(blocked) = policy.get("plugins.blocked_marketplaces") {
        s.set("blockedMarketplaces", blocked.clone());
    }
    if policy.on("plugins.disable_sideload_flags") {
        s.set("disableSideloadFlags", json!(true));
    }
    s.surfaces
        .extend(list(policy, "plugins.only_customization").unwrap_or_default());
    if let Some(skills) = policy.strings("skills.allowed") {
        s.surfaces.insert("skills".to_owned());
        if skills.is_empty() {
            s.deny.insert("Skill".to_owned());
        }
    }
    if policy.on("skills.disable_bundled") {
        s.set("disableBundledSkills", json!(true));
    }
    if policy.on("skills.disable_shell_execution") {
        s.set("disableSkillShellExecution", json!(true));
    }
    // Remote and egress features.
    for (key, setting) in [
        ("features.disable_remote_control", "disableRemoteControl"),
        ("features.disable_workflows", "disableWorkflows"),
        ("features.disable_artifact", "disableArtifact"),
        ("features.disable_agent_view", "disableAgentView"),
        (
            "features.disable_claude_ai_connectors",
            "disableClaudeAiConnectors",
        ),
    ] {
        if policy.on(key) {
            s.set(setting, json!(true));
        }
    }
    if policy.on("features.disable_channels") {
        s.set("channelsEnabled", json!(false));
    }
    // Session.
    if let Some(days) = policy.get("session.cleanup_period_days") {
        s.set("cleanupPeriodDays", days.clone());
    }
    let mut announcements: Vec<String> = opts
        .announcement
        .iter()
        .filter(|t| !t.trim().is_empty())
        .cloned()
        .collect();
    announcements.extend(list(policy, "session.announcements").unwrap_or_default());
    if !announcements.is_empty() {
        s.set("companyAnnouncements", json!(announcements));
    }
    if let Some(text) = policy.text("session.claude_md") {
        s.set("claudeMd", json!(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relay's address goes into the managed `env`, beside the helper that hands out the
    /// local token; without one, no base URL is written.
    #[test]
    fn base_url_points_claude_code_at_the_relay() {
        let opts = RenderOptions {
            api_key_helper: Some("/usr/bin/palisade-agent local-token".into()),
            base_url: Some("http://127.0.0.1:47913".into()),
            os: TargetOs::Linux,
            ..RenderOptions::default()
        };
        let v: Value = serde_json::from_slice(&render_bytes(&Policy::new(), &opts)).unwrap();
        assert_eq!(v["env"][BASE_URL_ENV], json!("http://127.0.0.1:47913"));
        assert_eq!(
            v["apiKeyHelper"],
            json!("/usr/bin/palisade-agent local-token")
        );
        let plain = RenderOptions {
            base_url: None,
            ..opts
        };
        let v: Value = serde_json::from_slice(&render_bytes(&Policy::new(), &plain)).unwrap();
        assert!(v["env"].get(BASE_URL_ENV).is_none(), "{v}");
    }
}
