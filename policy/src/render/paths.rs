//! The path keys (`files.deny_read`, `files.deny_write`, `permissions.additional_directories`)
//! in Claude Code's two conventions: permission rules and sandbox paths. A path written for
//! the other platform (`C:\x` on Linux or macOS, `/x` on Windows) is left out;
//! [`inapplicable_paths`] lists them so the agent can say so.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Settings;
use crate::document::Policy;
use crate::rules::path::{PathSpec, PathUse, TargetOs};

/// The keys holding paths, and how each is parsed.
const PATH_KEYS: &[(&str, PathUse)] = &[
    ("files.deny_read", PathUse::Deny),
    ("files.deny_write", PathUse::Deny),
    ("permissions.additional_directories", PathUse::Directory),
];

fn specs(policy: &Policy, key: &str, usage: PathUse) -> Vec<PathSpec> {
    policy
        .strings(key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| PathSpec::parse(p, usage).ok())
        .collect()
}

/// Adds the rules and sandbox paths of the path keys that apply to `os`.
pub(super) fn files(policy: &Policy, os: TargetOs, s: &mut Settings) {
    // (key, permission tool, bare tools denied for a root, sandbox list)
    let kinds = [
        (
            "files.deny_read",
            "Read",
            ["Read", "Glob", "Grep"],
            "sandbox.filesystem.denyRead",
        ),
        // An Edit deny does not stop the Write tool (#84697): a root denies each writer.
        (
            "files.deny_write",
            "Edit",
            ["Edit", "Write", "NotebookEdit"],
            "sandbox.filesystem.denyWrite",
        ),
    ];
    for (key, tool, root_tools, sandbox_key) in kinds {
        let mut sandbox = BTreeSet::new();
        for spec in specs(policy, key, PathUse::Deny)
            .into_iter()
            .filter(|p| p.applies_to(os))
        {
            if spec.is_root() {
                s.deny.extend(root_tools.map(str::to_owned));
            }
            s.deny.extend(
                spec.rule_specifiers()
                    .into_iter()
                    .map(|p| format!("{tool}({p})")),
            );
            sandbox.extend(spec.sandbox_path());
        }
        if !sandbox.is_empty() {
            s.set(
                sandbox_key,
                Value::Array(sandbox.into_iter().map(Value::String).collect()),
            );
        }
    }
    if policy.get("permissions.additional_directories").is_some() {
        let dirs: Vec<Value> = specs(
            policy,
            "permissions.additional_directories",
            PathUse::Directory,
        )
        .into_iter()
        .filter(|p| p.applies_to(os))
        .map(|p| Value::String(p.canonical()))
        .collect();
        s.set("permissions.additionalDirectories", Value::Array(dirs));
    }
}

/// The path entries that are valid but written for another platform than `os`, which
/// [`super::render`] leaves out (`key: path`).
pub fn inapplicable_paths(policy: &Policy, os: TargetOs) -> Vec<String> {
    PATH_KEYS
        .iter()
        .flat_map(|(key, usage)| {
            specs(policy, key, *usage)
                .into_iter()
                .filter(|p| !p.applies_to(os))
                .map(move |p| format!("{key}: {}", p.canonical()))
        })
        .collect()
}
