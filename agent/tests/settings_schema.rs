//! Schema sanity checks on rendered settings: every key emitted (top level and nested) is in an
//! allow-list taken from `shared/reference/claude-code-settings.md`, with the value type the
//! reference gives; every permission rule is well formed; no `Write(path)` rule, no relative
//! path rule and no `forceLoginOrgUUID` ever appears; output is deterministic; levels are
//! monotone.

mod common;

use palisade_agent::settings::{render, render_bytes, KNOWN_TOOLS};
use palisade_agent::{Policy, SecurityLevel};
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Object,
    Bool,
    Str,
    StrArray,
    ObjArray,
}

/// Every key path the renderer may emit (`[]` marks the elements of an array of objects).
const ALLOWED_KEYS: &[(&str, Kind)] = &[
    ("allowManagedHooksOnly", Kind::Bool),
    ("allowManagedMcpServersOnly", Kind::Bool),
    ("allowManagedPermissionRulesOnly", Kind::Bool),
    ("apiKeyHelper", Kind::Str),
    ("deniedMcpServers", Kind::ObjArray),
    ("deniedMcpServers[].serverName", Kind::Str),
    ("disableSideloadFlags", Kind::Bool),
    ("env", Kind::Object),
    ("env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS", Kind::Str),
    ("permissions", Kind::Object),
    ("permissions.defaultMode", Kind::Str),
    ("permissions.deny", Kind::StrArray),
    ("permissions.disableBypassPermissionsMode", Kind::Str),
    ("sandbox", Kind::Object),
    ("sandbox.allowUnsandboxedCommands", Kind::Bool),
    ("sandbox.enabled", Kind::Bool),
    ("sandbox.failIfUnavailable", Kind::Bool),
    ("sandbox.filesystem", Kind::Object),
    ("sandbox.filesystem.denyWrite", Kind::StrArray),
    ("sandbox.network", Kind::Object),
    ("sandbox.network.allowedDomains", Kind::StrArray),
    ("strictKnownMarketplaces", Kind::StrArray),
    ("strictPluginOnlyCustomization", Kind::StrArray),
];

const DEFAULT_MODES: &[&str] = &[
    "default",
    "acceptEdits",
    "plan",
    "auto",
    "dontAsk",
    "bypassPermissions",
];

fn kind_of(path: &str) -> Option<Kind> {
    ALLOWED_KEYS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, k)| *k)
}

fn check_type(path: &str, kind: Kind, value: &Value) -> Result<(), String> {
    let ok = match kind {
        Kind::Object => value.is_object(),
        Kind::Bool => value.is_boolean(),
        Kind::Str => value.is_string(),
        Kind::StrArray => value
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        Kind::ObjArray => value
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_object)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{path}: expected {kind:?}, got {value}"))
    }
}

/// Walks every key; returns the first problem.
fn check_keys(prefix: &str, value: &Value) -> Result<(), String> {
    let Some(map) = value.as_object() else {
        return Err(format!("{prefix}: expected an object"));
    };
    for (key, child) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let kind =
            kind_of(&path).ok_or_else(|| format!("key `{path}` is not in the allow-list"))?;
        check_type(&path, kind, child)?;
        match kind {
            Kind::Object => check_keys(&path, child)?,
            Kind::ObjArray => {
                for item in child.as_array().into_iter().flatten() {
                    check_keys(&format!("{path}[]"), item)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `^[A-Za-z]+(\(.+\))?$` or an MCP pattern (`mcp__*`, `mcp__<server>__*`,
/// `mcp__<server>__<tool>`), with the tool name known and path rules absolute.
fn check_rule(rule: &str) -> Result<(), String> {
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(rest) = rule.strip_prefix("mcp__") {
        let ok = rest == "*"
            || rest
                .split_once("__")
                .is_some_and(|(server, tool)| word(server) && (tool == "*" || word(tool)));
        return if ok {
            Ok(())
        } else {
            Err(format!("malformed MCP rule `{rule}`"))
        };
    }
    let name_len = rule
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rule.len());
    let (name, spec) = rule.split_at(name_len);
    if name.is_empty() {
        return Err(format!("rule `{rule}` has no tool name"));
    }
    let well_formed =
        spec.is_empty() || (spec.len() > 2 && spec.starts_with('(') && spec.ends_with(')'));
    if !well_formed {
        return Err(format!("rule `{rule}` does not match Tool or Tool(spec)"));
    }
    if !KNOWN_TOOLS.contains(&name) {
        return Err(format!("rule `{rule}` names an unknown tool"));
    }
    if !spec.is_empty() && matches!(name, "Write" | "NotebookEdit" | "MultiEdit") {
        return Err(format!("`{rule}`: Claude Code ignores {name}(path) rules"));
    }
    if name == "Edit" && !spec.is_empty() && !spec.starts_with("(//") {
        return Err(format!(
            "`{rule}`: path rules must be absolute (//...), `/x` is relative to the settings file"
        ));
    }
    Ok(())
}

fn check_document(v: &Value) -> Result<(), String> {
    check_keys("", v)?;
    for rule in v["permissions"]["deny"].as_array().into_iter().flatten() {
        check_rule(rule.as_str().unwrap_or_default())?;
    }
    if let Some(mode) = v["permissions"]["defaultMode"].as_str() {
        if !DEFAULT_MODES.contains(&mode) {
            return Err(format!("unknown defaultMode `{mode}`"));
        }
    }
    if let Some(value) = v["permissions"]["disableBypassPermissionsMode"].as_str() {
        if value != "disable" {
            return Err(format!("disableBypassPermissionsMode `{value}`"));
        }
    }
    if let Some(ttl) = v["env"]["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"].as_str() {
        if ttl.is_empty() || !ttl.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("TTL `{ttl}` is not a number of milliseconds"));
        }
    }
    for p in v["sandbox"]["filesystem"]["denyWrite"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let p = p.as_str().unwrap_or_default();
        let unix = p.starts_with('/') && !p.starts_with("//");
        let windows = p.len() >= 3 && p.as_bytes()[1] == b':' && p.as_bytes()[2] == b'\\';
        if !(unix || windows) {
            return Err(format!("denyWrite `{p}` is not a plain absolute path"));
        }
    }
    for s in v["strictPluginOnlyCustomization"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if s != "skills" {
            return Err(format!(
                "unexpected strictPluginOnlyCustomization entry {s}"
            ));
        }
    }
    if v.get("strictKnownMarketplaces")
        .is_some_and(|m| m != &Value::Array(vec![]))
    {
        return Err("strictKnownMarketplaces must be [] when emitted".to_owned());
    }
    let text = v.to_string();
    if text.contains("forceLoginOrgUUID") {
        return Err("forceLoginOrgUUID emitted".to_owned());
    }
    if text.contains("Write(") {
        return Err("a Write(...) rule was emitted".to_owned());
    }
    // Every array sorted and without duplicates.
    check_sorted("", v)
}

fn check_sorted(path: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            let keys: Vec<&String> = map.keys().collect();
            if keys.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("{path}: keys not sorted: {keys:?}"));
            }
            for (k, child) in map {
                check_sorted(&format!("{path}.{k}"), child)?;
            }
        }
        Value::Array(items) => {
            let strings: Vec<String> = items.iter().map(Value::to_string).collect();
            if strings.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("{path}: array not sorted/unique: {strings:?}"));
            }
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn every_rendered_document_passes_the_schema_checks() {
    let cases = common::sweep();
    assert!(cases.len() > 100);
    for (policy, opts) in &cases {
        policy.validate().unwrap();
        let v = render(policy, opts);
        if let Err(e) = check_document(&v) {
            panic!("{e}\npolicy: {policy:?}\nopts: {opts:?}\noutput: {v:#}");
        }
        // The bytes are the pretty form of the same document, newline-terminated.
        let bytes = render_bytes(policy, opts);
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), v);
        assert_eq!(render_bytes(policy, opts), bytes, "not deterministic");
    }
}

#[test]
fn the_checker_catches_mistakes() {
    let bad = [
        r#"{"permisions": {}}"#,
        r#"{"permissions": {"deny": ["Write(//etc/**)"]}}"#,
        r#"{"permissions": {"deny": ["Edit(/etc/**)"]}}"#,
        r#"{"permissions": {"deny": ["bash"]}}"#,
        r#"{"permissions": {"deny": ["Bash("]}}"#,
        r#"{"permissions": {"deny": ["mcp__x"]}}"#,
        r#"{"permissions": {"deny": ["WebFetch", "Bash"]}}"#,
        r#"{"permissions": {"defaultMode": "lockdown"}}"#,
        r#"{"sandbox": {"enabled": "true"}}"#,
        r#"{"sandbox": {"filesystem": {"denyWrite": ["//etc"]}}}"#,
        r#"{"deniedMcpServers": [{"name": "x"}]}"#,
        r#"{"forceLoginOrgUUID": "x"}"#,
        r#"{"env": {"CLAUDE_CODE_API_KEY_HELPER_TTL_MS": 60000}}"#,
    ];
    for doc in bad {
        let v: Value = serde_json::from_str(doc).unwrap();
        assert!(check_document(&v).is_err(), "accepted {doc}");
    }
    let good: Value = serde_json::from_str(
        r#"{"permissions": {"deny": ["Bash", "Edit(//c/x/**)", "mcp__*", "mcp__a__*"]}}"#,
    )
    .unwrap();
    check_document(&good).unwrap();
}

/// Collects `path -> leaf` pairs; array elements are leaves of their own, so a superset check
/// also covers arrays.
fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                leaves(&format!("{prefix}.{k}"), child, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push((format!("{prefix}[]"), item.clone()));
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

#[test]
fn each_level_includes_everything_of_the_lower_ones() {
    let bases = [
        Policy::default(),
        common::level_policy(SecurityLevel::Minimal),
        common::full_policy(),
        Policy::lockdown(),
    ];
    for base in bases {
        for os in [
            palisade_agent::TargetOs::Linux,
            palisade_agent::TargetOs::Windows,
        ] {
            let opts = common::opts(os, true);
            let rendered: Vec<Vec<(String, Value)>> = SecurityLevel::ALL
                .iter()
                .map(|level| {
                    let p = Policy {
                        security_level: *level,
                        ..base.clone()
                    };
                    let mut out = Vec::new();
                    leaves("", &render(&p, &opts), &mut out);
                    out
                })
                .collect();
            for pair in rendered.windows(2) {
                for leaf in &pair[0] {
                    assert!(pair[1].contains(leaf), "{leaf:?} lost at a higher level");
                }
                assert!(pair[1].len() > pair[0].len(), "a level added nothing");
            }
        }
    }
}

#[test]
fn lockdown_denies_every_known_tool() {
    let v = render(
        &Policy::lockdown(),
        &common::opts(palisade_agent::TargetOs::Linux, false),
    );
    let deny: Vec<&str> = v["permissions"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for tool in KNOWN_TOOLS.iter().chain(["mcp__*"].iter()) {
        assert!(deny.contains(tool), "{tool} not denied");
    }
    assert_eq!(v["permissions"]["defaultMode"], "dontAsk");
    check_document(&v).unwrap();
}
