//! Security levels are named bundles of policy keys, not a separate code path: the merge adds
//! the bundle of the strictest level set anywhere as one more source, with the same rules as
//! every other source. And the lockdown policy an agent enforces after deprovisioning.
//!
//! | level | keys it sets (each level includes the lower ones) | why |
//! |---|---|---|
//! | minimal | none | only the explicit rules |
//! | moderate | `permissions.disable_bypass_mode` | `--dangerously-skip-permissions` would skip every rule |
//! | strict | `permissions.managed_rules_only`, `permissions.disable_auto_mode`, `credentials.block_personal_keys`, `plugins.disable_sideload_flags` | a developer's own rules, the auto-mode classifier, a personal key and side-loaded plugins/MCP would each route around the managed rules |
//! | paranoid | `sandbox.enabled`, `sandbox.fail_if_unavailable`, `sandbox.allow_unsandboxed_commands = false`, `sandbox.auto_allow_bash = false`, `network.managed_only`, `network.strict`, `mcp.managed_only`, `hooks.managed_only`, `plugins.only_customization = [agents, hooks, mcp, skills]`, `plugins.known_marketplaces = []`, `features.disable_remote_control`, `features.disable_claude_ai_connectors`, `features.disable_channels` | Bash runs in the OS sandbox and still prompts; only managed network lists, MCP servers, hooks, agents and skills; no new marketplaces; no remote or egress surfaces |

use serde_json::{json, Value};

use crate::document::Policy;
use crate::level::SecurityLevel;
use crate::rules::names::SURFACES;
use crate::rules::permission::{EVERY_MCP_TOOL, EVERY_TOOL};

/// The keys `level` sets (its own and every lower level's).
pub fn bundle(level: SecurityLevel) -> Policy {
    let mut keys: Vec<(&str, Value)> = Vec::new();
    if level >= SecurityLevel::Moderate {
        keys.push(("permissions.disable_bypass_mode", json!(true)));
    }
    if level >= SecurityLevel::Strict {
        keys.extend([
            ("permissions.managed_rules_only", json!(true)),
            ("permissions.disable_auto_mode", json!(true)),
            ("credentials.block_personal_keys", json!(true)),
            ("plugins.disable_sideload_flags", json!(true)),
        ]);
    }
    if level >= SecurityLevel::Paranoid {
        keys.extend([
            ("sandbox.enabled", json!(true)),
            ("sandbox.fail_if_unavailable", json!(true)),
            ("sandbox.allow_unsandboxed_commands", json!(false)),
            ("sandbox.auto_allow_bash", json!(false)),
            ("network.managed_only", json!(true)),
            ("network.strict", json!(true)),
            ("mcp.managed_only", json!(true)),
            ("hooks.managed_only", json!(true)),
            ("plugins.only_customization", json!(SURFACES)),
            ("plugins.known_marketplaces", json!([])),
            ("features.disable_remote_control", json!(true)),
            ("features.disable_claude_ai_connectors", json!(true)),
            ("features.disable_channels", json!(true)),
        ]);
    }
    build(keys)
}

/// The policy an agent enforces once its person is deprovisioned (or offline under the
/// lockdown rule): every tool denied (`*` covers the built-in tools, `mcp__*` every MCP tool),
/// no MCP server, no skill, no network, no auto or bypass mode, and nothing a developer's own
/// settings could add back.
pub fn lockdown() -> Policy {
    build(vec![
        ("permissions.deny", json!([EVERY_TOOL, EVERY_MCP_TOOL])),
        ("permissions.default_mode", json!("dontAsk")),
        ("permissions.disable_auto_mode", json!(true)),
        ("permissions.disable_bypass_mode", json!(true)),
        ("permissions.managed_rules_only", json!(true)),
        ("network.allowed_domains", json!([])),
        ("mcp.allowed", json!([])),
        ("mcp.managed_only", json!(true)),
        ("hooks.managed_only", json!(true)),
        ("skills.allowed", json!([])),
        ("skills.disable_bundled", json!(true)),
        ("plugins.only_customization", json!(SURFACES)),
        ("plugins.known_marketplaces", json!([])),
        ("plugins.disable_sideload_flags", json!(true)),
        ("credentials.block_personal_keys", json!(true)),
        ("features.disable_remote_control", json!(true)),
        ("features.disable_workflows", json!(true)),
        ("features.disable_artifact", json!(true)),
        ("features.disable_claude_ai_connectors", json!(true)),
        ("features.disable_channels", json!(true)),
    ])
}

/// True when `policy` is (at least) the lockdown: every tool denied.
pub fn denies_every_tool(policy: &Policy) -> bool {
    policy
        .strings("permissions.deny")
        .is_some_and(|deny| deny.contains(&EVERY_TOOL) && deny.contains(&EVERY_MCP_TOOL))
}

fn build(keys: Vec<(&str, Value)>) -> Policy {
    let mut policy = Policy::new();
    for (key, value) in keys {
        // The bundles are written here against the same table; a typo fails every test.
        if let Err(e) = policy.set(key, value) {
            debug_assert!(false, "bundle key {key}: {e}");
        }
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_cumulative_and_valid() {
        let mut previous = Policy::new();
        for level in SecurityLevel::ALL {
            let bundle = bundle(level);
            for (key, value) in previous.entries() {
                assert_eq!(
                    bundle.get(key.name),
                    Some(value),
                    "{level} lost {}",
                    key.name
                );
            }
            previous = bundle;
        }
        assert!(bundle(SecurityLevel::Minimal).is_empty());
        assert_eq!(
            bundle(SecurityLevel::Paranoid).flag("sandbox.auto_allow_bash"),
            Some(false)
        );
    }

    #[test]
    fn lockdown_denies_everything() {
        let l = lockdown();
        assert!(denies_every_tool(&l));
        assert!(l.on("permissions.disable_auto_mode"));
        assert_eq!(l.strings("mcp.allowed"), Some(vec![]));
        assert!(!denies_every_tool(&bundle(SecurityLevel::Paranoid)));
    }
}
