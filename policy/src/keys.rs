//! The one table of policy keys: each key's value kind, its merge rule, whether a group may
//! set it, and the Claude Code settings it becomes. Adding a key is one row here plus its
//! rendering in [`crate::render`]; parsing, validation, the merge, `--explain` and the wire
//! form all read this table.

use crate::rules::{domain, mcp, names, path, permission, Check};
use serde_json::Value;

/// What a key's value is.
#[derive(Clone, Copy)]
pub enum Kind {
    /// `true` / `false`.
    Bool,
    /// A whole number in `min..=max`.
    Count { min: u64, max: u64 },
    /// One of a fixed set of strings, listed strictest first.
    Choice(&'static [&'static str]),
    /// One string, checked and normalized.
    Text(Check),
    /// A set of strings, each checked and normalized (sorted, de-duplicated).
    Strings(Check),
    /// A set of tables, each checked (sorted by their canonical JSON, de-duplicated).
    Objects(fn(&Value) -> Result<Value, String>),
    /// A table of string values (names checked by the first, values by the second).
    StringMap(Check, Check),
    /// Claude Code's hooks table: event name → matcher groups.
    Hooks,
}

impl Kind {
    /// How the kind is described in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Count { .. } => "a whole number",
            Kind::Choice(_) | Kind::Text(_) => "a string",
            Kind::Strings(_) => "a list of strings",
            Kind::Objects(_) => "a list of tables",
            Kind::StringMap(..) => "a table of strings",
            Kind::Hooks => "a table of hook events",
        }
    }
}

/// How the values of one key from the org defaults, every group of the user and the security
/// level's bundle become one. Every rule keeps the design promise: **a group can only
/// restrict, never widen what the org default forbids**, and the result does not depend on
/// the order of the groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Deny lists: every source's entries.
    Union,
    /// Grants and allowlists: the entries every list that is set admits (absent = no opinion).
    Intersect,
    /// [`Merge::Intersect`] where `*.example.com` admits the names under it.
    IntersectDomains,
    /// Locks: on if any source turns it on.
    AnyTrue,
    /// Permissive switches: off if any source turns it off.
    FalseWins,
    /// Retention: the smallest number.
    Minimum,
    /// Minimum version: the highest.
    HighestVersion,
    /// Maximum version: the lowest.
    LowestVersion,
    /// An ordered choice: the strictest value set anywhere ([`Kind::Choice`] lists it first).
    Strictest,
    /// No order of strictness: the org default; without one, the groups' value (on a conflict
    /// between groups, the first in byte order, flagged by `--explain`).
    OrgFirst,
    /// Only the org default may set it (a group's value is refused).
    OrgOnly,
    /// Text: the org default's, then each group's in name order, joined by a blank line.
    Concatenate,
}

impl Merge {
    /// The rule in words, for `--explain` and the docs.
    pub fn describe(self) -> &'static str {
        match self {
            Merge::Union => "union of every source",
            Merge::Intersect => "intersection of the lists that are set",
            Merge::IntersectDomains => {
                "intersection of the lists that are set (*.x covers names under x)"
            }
            Merge::AnyTrue => "on if any source turns it on",
            Merge::FalseWins => "off if any source turns it off",
            Merge::Minimum => "the smallest value",
            Merge::HighestVersion => "the highest version",
            Merge::LowestVersion => "the lowest version",
            Merge::Strictest => "the strictest value",
            Merge::OrgFirst => "the org default; else the groups' value",
            Merge::OrgOnly => "org default only",
            Merge::Concatenate => "org text, then each group's in name order",
        }
    }
}

/// One policy key.
pub struct Key {
    /// `section.name` (or `name` at the top level), as written in policy files.
    pub name: &'static str,
    pub kind: Kind,
    pub merge: Merge,
    /// The Claude Code settings it renders into.
    pub renders: &'static str,
    /// One line for humans.
    pub help: &'static str,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.name == other.name
    }
}

impl Eq for Key {}

/// The security levels, weakest first.
pub const LEVELS: &[&str] = &["minimal", "moderate", "strict", "paranoid"];

/// `permissions.default_mode` values, strictest first (`dontAsk` denies what is not
/// pre-approved; `bypassPermissions` asks nothing).
pub const MODES: &[&str] = &[
    "dontAsk",
    "plan",
    "default",
    "acceptEdits",
    "auto",
    "bypassPermissions",
];

/// OTLP protocols.
pub const OTLP_PROTOCOLS: &[&str] = &["grpc", "http/json", "http/protobuf"];

const fn key(
    name: &'static str,
    kind: Kind,
    merge: Merge,
    renders: &'static str,
    help: &'static str,
) -> Key {
    Key {
        name,
        kind,
        merge,
        renders,
        help,
    }
}

/// Every key, in the order policy files and reports list them.
pub static KEYS: &[Key] = &[
    key(
        "security_level",
        Kind::Choice(&["paranoid", "strict", "moderate", "minimal"]),
        Merge::Strictest,
        "the level's bundle of keys (see bundles.rs)",
        "a named bundle of the keys below",
    ),
    // --- permissions
    key(
        "permissions.deny",
        Kind::Strings(permission::restricting_rule),
        Merge::Union,
        "permissions.deny",
        "rules Claude Code refuses: Tool, Tool(specifier), mcp__server__*, *",
    ),
    key(
        "permissions.ask",
        Kind::Strings(permission::restricting_rule),
        Merge::Union,
        "permissions.ask",
        "rules that always prompt (denied in dontAsk mode)",
    ),
    key(
        "permissions.allow",
        Kind::Strings(permission::granting_rule),
        Merge::Intersect,
        "permissions.allow",
        "rules pre-approved without a prompt (a grant)",
    ),
    key(
        "permissions.additional_directories",
        Kind::Strings(path::directory),
        Merge::Intersect,
        "permissions.additionalDirectories",
        "extra working directories (a grant)",
    ),
    key(
        "permissions.default_mode",
        Kind::Choice(MODES),
        Merge::Strictest,
        "permissions.defaultMode",
        "the mode a session starts in (not a lock: --permission-mode overrides it)",
    ),
    key(
        "permissions.disable_auto_mode",
        Kind::Bool,
        Merge::AnyTrue,
        "disableAutoMode = \"disable\"",
        "no auto mode (the classifier approving tools)",
    ),
    key(
        "permissions.disable_bypass_mode",
        Kind::Bool,
        Merge::AnyTrue,
        "permissions.disableBypassPermissionsMode = \"disable\"",
        "reject --dangerously-skip-permissions",
    ),
    key(
        "permissions.managed_rules_only",
        Kind::Bool,
        Merge::AnyTrue,
        "allowManagedPermissionRulesOnly",
        "only managed allow/ask/deny rules count",
    ),
    // --- files
    key(
        "files.deny_read",
        Kind::Strings(path::deny_path),
        Merge::Union,
        "permissions.deny Read(..) + sandbox.filesystem.denyRead",
        "paths no tool may read (/abs, C:\\abs, ~/x, **/name)",
    ),
    key(
        "files.deny_write",
        Kind::Strings(path::deny_path),
        Merge::Union,
        "permissions.deny Edit(..) + sandbox.filesystem.denyWrite",
        "paths no tool may write",
    ),
    // --- network
    key(
        "network.allowed_domains",
        Kind::Strings(domain::domain),
        Merge::IntersectDomains,
        "sandbox.network.allowedDomains + allowManagedDomainsOnly + strictAllowlist",
        "the only hosts sandboxed commands may reach ([] = none, and no WebFetch/WebSearch)",
    ),
    key(
        "network.denied_domains",
        Kind::Strings(domain::domain),
        Merge::Union,
        "sandbox.network.deniedDomains + permissions.deny WebFetch(domain:..)",
        "hosts nothing may reach",
    ),
    key(
        "network.managed_only",
        Kind::Bool,
        Merge::AnyTrue,
        "sandbox.network.allowManagedDomainsOnly",
        "only managed domain lists count",
    ),
    key(
        "network.strict",
        Kind::Bool,
        Merge::AnyTrue,
        "sandbox.network.strictAllowlist",
        "block unlisted hosts instead of prompting",
    ),
    // --- sandbox
    key(
        "sandbox.enabled",
        Kind::Bool,
        Merge::AnyTrue,
        "sandbox.enabled",
        "run Bash in the OS sandbox (macOS, Linux)",
    ),
    key(
        "sandbox.fail_if_unavailable",
        Kind::Bool,
        Merge::AnyTrue,
        "sandbox.failIfUnavailable",
        "refuse to start without a sandbox",
    ),
    key(
        "sandbox.allow_unsandboxed_commands",
        Kind::Bool,
        Merge::FalseWins,
        "sandbox.allowUnsandboxedCommands",
        "false: no retry outside the sandbox",
    ),
    key(
        "sandbox.auto_allow_bash",
        Kind::Bool,
        Merge::FalseWins,
        "sandbox.autoAllowBashIfSandboxed",
        "false: sandboxed Bash still prompts",
    ),
    // --- mcp
    key(
        "mcp.allowed",
        Kind::Objects(mcp::matcher),
        Merge::Intersect,
        "allowedMcpServers",
        "the only MCP servers that may load ({name}, {command}, {url}); [] = none",
    ),
    key(
        "mcp.denied",
        Kind::Objects(mcp::matcher),
        Merge::Union,
        "deniedMcpServers (+ mcp__name__* for names)",
        "MCP servers that must not load",
    ),
    key(
        "mcp.managed_only",
        Kind::Bool,
        Merge::AnyTrue,
        "allowManagedMcpServersOnly (without mcp.allowed also allowedMcpServers = [] and strictPluginOnlyCustomization mcp)",
        "only managed MCP servers",
    ),
    // --- models
    key(
        "models.available",
        Kind::Strings(names::model),
        Merge::Intersect,
        "availableModels",
        "the models a developer may pick",
    ),
    key(
        "models.enforce",
        Kind::Bool,
        Merge::AnyTrue,
        "enforceAvailableModels",
        "also restrict the default model",
    ),
    key(
        "models.default",
        Kind::Text(names::model),
        Merge::OrgFirst,
        "model",
        "the default model (not a lock)",
    ),
    // --- hooks
    key(
        "hooks.events",
        Kind::Hooks,
        Merge::Union,
        "hooks",
        "managed hooks per event",
    ),
    key(
        "hooks.managed_only",
        Kind::Bool,
        Merge::AnyTrue,
        "allowManagedHooksOnly",
        "only managed hooks run",
    ),
    key(
        "hooks.allowed_http_urls",
        Kind::Strings(names::url_pattern),
        Merge::Intersect,
        "allowedHttpHookUrls",
        "the only URLs HTTP hooks may call",
    ),
    // --- telemetry
    key(
        "telemetry.endpoint",
        Kind::Text(names::url),
        Merge::OrgOnly,
        "env CLAUDE_CODE_ENABLE_TELEMETRY, OTEL_*_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT",
        "OpenTelemetry collector (locks the destination)",
    ),
    key(
        "telemetry.protocol",
        Kind::Choice(OTLP_PROTOCOLS),
        Merge::OrgOnly,
        "env OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTLP protocol",
    ),
    key(
        "telemetry.headers",
        Kind::StringMap(names::token, names::line),
        Merge::OrgOnly,
        "env OTEL_EXPORTER_OTLP_HEADERS",
        "headers sent to the collector (readable on the laptop)",
    ),
    key(
        "telemetry.resource_attributes",
        Kind::StringMap(names::token, names::attribute_value),
        Merge::OrgOnly,
        "env OTEL_RESOURCE_ATTRIBUTES",
        "attributes on every signal",
    ),
    key(
        "telemetry.include_groups",
        Kind::Bool,
        Merge::AnyTrue,
        "env OTEL_RESOURCE_ATTRIBUTES palisade.groups",
        "add the person's groups to the attributes",
    ),
    key(
        "telemetry.log_user_prompts",
        Kind::Bool,
        Merge::OrgOnly,
        "env OTEL_LOG_USER_PROMPTS",
        "include prompt text",
    ),
    // --- the client
    key(
        "claude_code.required_minimum_version",
        Kind::Text(names::version),
        Merge::HighestVersion,
        "requiredMinimumVersion",
        "older Claude Code refuses to start",
    ),
    key(
        "claude_code.required_maximum_version",
        Kind::Text(names::version),
        Merge::LowestVersion,
        "requiredMaximumVersion",
        "newer Claude Code refuses to start",
    ),
    // --- credentials
    key(
        "credentials.block_personal_keys",
        Kind::Bool,
        Merge::AnyTrue,
        "env ANTHROPIC_API_KEY = \"\", ANTHROPIC_AUTH_TOKEN = \"\"",
        "a developer's own key cannot override the managed one",
    ),
    key(
        "credentials.force_login_org_uuid",
        Kind::Strings(names::uuid),
        Merge::Intersect,
        "forceLoginOrgUUID (only without a Palisade key)",
        "the claude.ai organisations a login may use",
    ),
    // --- plugins
    key(
        "plugins.known_marketplaces",
        Kind::Objects(names::marketplace),
        Merge::Intersect,
        "strictKnownMarketplaces",
        "the only marketplaces plugins may come from ([] = none)",
    ),
    key(
        "plugins.blocked_marketplaces",
        Kind::Objects(names::marketplace),
        Merge::Union,
        "blockedMarketplaces",
        "marketplaces that may not be added",
    ),
    key(
        "plugins.disable_sideload_flags",
        Kind::Bool,
        Merge::AnyTrue,
        "disableSideloadFlags",
        "reject --plugin-dir, --agents, --mcp-config",
    ),
    key(
        "plugins.only_customization",
        Kind::Strings(names::surface),
        Merge::Union,
        "strictPluginOnlyCustomization",
        "surfaces (agents, hooks, mcp, skills) only plugins and managed settings may customize",
    ),
    // --- skills
    key(
        "skills.allowed",
        Kind::Strings(names::skill),
        Merge::Intersect,
        "strictPluginOnlyCustomization skills ([] also denies Skill)",
        "only plugin skills; [] = none",
    ),
    key(
        "skills.disable_bundled",
        Kind::Bool,
        Merge::AnyTrue,
        "disableBundledSkills",
        "remove the bundled skills",
    ),
    key(
        "skills.disable_shell_execution",
        Kind::Bool,
        Merge::AnyTrue,
        "disableSkillShellExecution",
        "no inline ! shell in skills",
    ),
    // --- remote and egress features
    key(
        "features.disable_remote_control",
        Kind::Bool,
        Merge::AnyTrue,
        "disableRemoteControl",
        "no remote control of sessions",
    ),
    key(
        "features.disable_workflows",
        Kind::Bool,
        Merge::AnyTrue,
        "disableWorkflows",
        "no cloud workflows",
    ),
    key(
        "features.disable_artifact",
        Kind::Bool,
        Merge::AnyTrue,
        "disableArtifact",
        "no published artifacts",
    ),
    key(
        "features.disable_agent_view",
        Kind::Bool,
        Merge::AnyTrue,
        "disableAgentView",
        "no agent view",
    ),
    key(
        "features.disable_claude_ai_connectors",
        Kind::Bool,
        Merge::AnyTrue,
        "disableClaudeAiConnectors",
        "no claude.ai connectors",
    ),
    key(
        "features.disable_channels",
        Kind::Bool,
        Merge::AnyTrue,
        "channelsEnabled = false",
        "no channels",
    ),
    // --- session
    key(
        "session.cleanup_period_days",
        Kind::Count { min: 1, max: 3650 },
        Merge::Minimum,
        "cleanupPeriodDays",
        "days transcripts are kept",
    ),
    key(
        "session.announcements",
        Kind::Strings(names::line),
        Merge::Union,
        "companyAnnouncements",
        "lines shown at start",
    ),
    key(
        "session.claude_md",
        Kind::Text(names::document),
        Merge::Concatenate,
        "claudeMd",
        "organisation-wide CLAUDE.md",
    ),
];

/// The key named `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The sections of the key names (`permissions`, `files`, ...), in table order.
pub fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for key in KEYS {
        if let Some((section, _)) = key.name.split_once('.') {
            if !out.contains(&section) {
                out.push(section);
            }
        }
    }
    out
}

/// The key table as Markdown (`policy/README.md` embeds it; a test keeps the two equal).
pub fn markdown_table() -> String {
    let mut out = String::from("| key | value | merge | renders |\n|---|---|---|---|\n");
    for k in KEYS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.name,
            k.kind.describe(),
            k.merge.describe(),
            k.renders.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_key() {
        let readme = include_str!("../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "policy/README.md's key table is out of date; replace it with:\n{table}"
        );
    }

    #[test]
    fn names_are_unique_and_well_formed() {
        for (i, key) in KEYS.iter().enumerate() {
            assert!(
                KEYS[..i].iter().all(|k| k.name != key.name),
                "{} twice",
                key.name
            );
            assert!(key.name.split('.').count() <= 2, "{}", key.name);
            assert!(key
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.'));
            if let Kind::Choice(_) = key.kind {
                assert!(matches!(
                    key.merge,
                    Merge::Strictest | Merge::OrgOnly | Merge::OrgFirst
                ));
            }
        }
        assert!(find("permissions.deny").is_some());
        assert!(sections().contains(&"network"));
    }
}
