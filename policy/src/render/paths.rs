//! The path keys (`files.deny_read`, `files.deny_write`, `permissions.additional_directories`)
//! in Claude Code's two conventions: permission rules and sandbox paths. A path written for
//! the other platform (`C:\x` on Linux or macOS, `/x` on Windows) is left out;
//! [`inapplicable_paths`] lists them so the agent can say so.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

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
pub(super) fn files(
    policy: &Policy,
    os: TargetOs,
    deny: &mut BTreeSet<String>,
    root: &mut Map<String, Value>,
) {
    let mut deny_read = BTreeSet::new();
    let mut deny_write = BTreeSet::new();
    for spec in specs(policy, "files.deny_read", PathUse::Deny)
        .into_iter()
        .filter(|p| p.applies_to(os))
    {
        if spec.is_root() {
            // Reading anything: Glob and Grep read files too.
            deny.extend(["Read", "Glob", "Grep"].map(str::to_owned));
        }
        deny.extend(
            spec.rule_specifiers()
                .into_iter()
                .map(|p| format!("Read({p})")),
        );
        deny_read.extend(spec.sandbox_path());
    }
    for spec in specs(policy, "files.deny_write", PathUse::Deny)
        .into_iter()
        .filter(|p| p.applies_to(os))
    {
        if spec.is_root() {
            // An Edit deny does not stop the Write tool (#84697): deny each writer.
            deny.extend(["Edit", "Write", "NotebookEdit"].map(str::to_owned));
        }
        deny.extend(
            spec.rule_specifiers()
                .into_iter()
                .map(|p| format!("Edit({p})")),
        );
        deny_write.extend(spec.sandbox_path());
    }
    let mut filesystem = Map::new();
    if !deny_read.is_empty() {
        filesystem.insert(
            "denyRead".to_owned(),
            Value::Array(deny_read.into_iter().map(Value::String).collect()),
        );
    }
    if !deny_write.is_empty() {
        filesystem.insert(
            "denyWrite".to_owned(),
            Value::Array(deny_write.into_iter().map(Value::String).collect()),
        );
    }
    if !filesystem.is_empty() {
        let sandbox = root
            .entry("sandbox".to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(sandbox) = sandbox {
            sandbox.insert("filesystem".to_owned(), Value::Object(filesystem));
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
        let permissions = root
            .entry("permissions".to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(permissions) = permissions {
            permissions.insert("additionalDirectories".to_owned(), Value::Array(dirs));
        }
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
