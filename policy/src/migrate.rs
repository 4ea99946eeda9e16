//! Version-1 policies (six flat fields) are read as version 2: each field moves to the key
//! that carries its meaning now, and the reader gets a notice saying what moved.
//!
//! | v1 field | v2 key |
//! |---|---|
//! | `blocked_tools` | `permissions.deny` |
//! | `security_level` | `security_level` |
//! | `blocked_write_paths` | `files.deny_write` |
//! | `allowed_skills` | `skills.allowed` |
//! | `blocked_mcp_servers` | `mcp.denied` (as `{name = ..}` matchers) |
//! | `allowed_web_domains` | `network.allowed_domains` (now also locks the network) |

use serde_json::{json, Map, Value};

use crate::error::{PolicyError, PolicyErrors};

/// The version-1 fields and where each went.
pub const V1_FIELDS: &[(&str, &str)] = &[
    ("blocked_tools", "permissions.deny"),
    ("blocked_write_paths", "files.deny_write"),
    ("allowed_skills", "skills.allowed"),
    ("blocked_mcp_servers", "mcp.denied"),
    ("allowed_web_domains", "network.allowed_domains"),
];

/// True when the document uses a version-1 field (`security_level` alone is valid in both).
pub fn is_v1(top: &Map<String, Value>) -> bool {
    top.keys().any(|k| V1_FIELDS.iter().any(|(v1, _)| v1 == k))
        || top.get("schema").and_then(Value::as_u64) == Some(1)
}

/// The version-2 document for a version-1 one, and the notice. Mixing the two is an error.
pub fn to_v2(top: &Map<String, Value>) -> Result<(Value, Vec<String>), PolicyErrors> {
    let mut out = Map::new();
    let mut moved = Vec::new();
    let mut errors = Vec::new();
    for (name, v) in top {
        if name == "schema" {
            continue;
        }
        if name == "security_level" {
            out.insert(name.clone(), v.clone());
            continue;
        }
        let Some((_, target)) = V1_FIELDS.iter().find(|(v1, _)| v1 == name) else {
            errors.push(PolicyError::key(
                name.clone(),
                None,
                "a version-1 policy (blocked_tools, allowed_web_domains, ...) cannot also use \
                 version-2 keys; write it all in version 2",
            ));
            continue;
        };
        if v.is_null() {
            continue;
        }
        let converted = if name == "blocked_mcp_servers" {
            match v {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|item| match item {
                            Value::String(s) => json!({ "name": s }),
                            other => other.clone(),
                        })
                        .collect(),
                ),
                other => other.clone(),
            }
        } else {
            v.clone()
        };
        out.insert((*target).to_owned(), converted);
        moved.push(format!("{name} → {target}"));
    }
    PolicyErrors::check(errors)?;
    let notice = if moved.is_empty() {
        "version-1 policy read as version 2".to_owned()
    } else {
        format!(
            "version-1 policy migrated to version 2 ({}); `policy show --json` prints it in the new form",
            moved.join(", ")
        )
    };
    Ok((Value::Object(out), vec![notice]))
}

#[cfg(test)]
mod tests {
    use crate::Policy;
    use serde_json::json;

    #[test]
    fn a_v1_policy_is_migrated_with_a_notice() {
        let loaded = Policy::from_value(&json!({
            "blocked_tools": ["Bash", "mcp__github__*"],
            "security_level": "strict",
            "blocked_write_paths": ["/etc/"],
            "allowed_skills": ["pdf"],
            "blocked_mcp_servers": ["filesystem"],
            "allowed_web_domains": ["Docs.rs"],
        }))
        .unwrap();
        assert_eq!(
            loaded.policy.to_value(),
            json!({
                "files": {"deny_write": ["/etc"]},
                "mcp": {"denied": [{"name": "filesystem"}]},
                "network": {"allowed_domains": ["docs.rs"]},
                "permissions": {"deny": ["Bash", "mcp__github__*"]},
                "security_level": "strict",
                "skills": {"allowed": ["pdf"]},
            })
        );
        assert_eq!(loaded.notices.len(), 1);
        assert!(loaded.notices[0].contains("blocked_tools → permissions.deny"));
    }

    #[test]
    fn v1_nulls_and_mixing() {
        let loaded =
            Policy::from_value(&json!({"allowed_skills": null, "blocked_tools": []})).unwrap();
        assert_eq!(loaded.policy.canonical_json(), "{}");
        let e = Policy::from_value(&json!({"blocked_tools": [], "permissions": {}})).unwrap_err();
        assert!(e.to_string().contains("cannot also use version-2 keys"));
        let e = Policy::from_value(&json!({"blocked_tools": ["bash"]})).unwrap_err();
        assert!(e.to_string().contains("permissions.deny[0]"), "{e}");
    }
}
