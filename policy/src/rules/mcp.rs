//! MCP servers: the server-name token inside `mcp__<server>__<tool>` rules, and the matchers of
//! the MCP allow and deny lists (by name, by launch command, by URL).
//!
//! A name matches the label a developer gave the server, so renaming it escapes a name rule;
//! only command and URL matchers are security controls (Claude Code's managed-mcp docs).

use serde_json::{json, Map, Value};

use super::{plain_text, quote};

const MAX_NAME_LEN: usize = 128;

/// The server part of an `mcp__<server>__*` rule: letters, digits, `_` and `-`, without `__`
/// and not starting or ending with `_` (so the rule stays unambiguous).
pub fn tool_server_name(server: &str) -> Result<String, String> {
    if server.is_empty() {
        return Err("empty MCP server name".to_owned());
    }
    if server.len() > MAX_NAME_LEN {
        return Err(format!(
            "MCP server name {} is longer than {MAX_NAME_LEN} bytes",
            quote(server)
        ));
    }
    if !server
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "MCP server name {} may only contain letters, digits, _ and -",
            quote(server)
        ));
    }
    if server.contains("__") || server.starts_with('_') || server.ends_with('_') {
        return Err(format!(
            "MCP server name {} must not contain __ or start or end with _",
            quote(server)
        ));
    }
    Ok(server.to_owned())
}

/// One matcher: exactly one of `{"name": ..}`, `{"command": [..]}`, `{"url": ..}`. A bare
/// string is read as a name (the v1 form).
pub fn matcher(value: &Value) -> Result<Value, String> {
    let object = match value {
        Value::String(name) => return name_matcher(name),
        Value::Object(object) => object,
        _ => return Err("expected {name = ..}, {command = [..]} or {url = ..}".to_owned()),
    };
    if object.len() != 1 {
        return Err(format!(
            "a matcher has exactly one of name, command or url (found {})",
            keys_of(object)
        ));
    }
    let Some((key, inner)) = object.iter().next() else {
        return Err("empty matcher".to_owned());
    };
    match (key.as_str(), inner) {
        ("name", Value::String(name)) => name_matcher(name),
        ("command", Value::Array(parts)) => {
            if parts.is_empty() {
                return Err("command: give the program and its arguments".to_owned());
            }
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                let Value::String(part) = part else {
                    return Err("command: every element is a string".to_owned());
                };
                plain_text("command element", part, 1024)?;
                out.push(Value::String(part.clone()));
            }
            Ok(json!({ "command": out }))
        }
        ("url", Value::String(url)) => {
            super::names::url_pattern(url).map(|url| json!({ "url": url }))
        }
        ("name" | "url", _) => Err(format!("{key}: expected a string")),
        ("command", _) => Err("command: expected a list of strings".to_owned()),
        (other, _) => Err(format!(
            "unknown matcher {} (expected name, command or url)",
            quote(other)
        )),
    }
}

fn name_matcher(name: &str) -> Result<Value, String> {
    plain_text("MCP server name", name, MAX_NAME_LEN)?;
    Ok(json!({ "name": name }))
}

fn keys_of(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "none".to_owned();
    }
    object
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The matcher as Claude Code writes it in `allowedMcpServers` / `deniedMcpServers`.
pub fn to_claude(matcher: &Value) -> Option<Value> {
    let object = matcher.as_object()?;
    if let Some(name) = object.get("name") {
        return Some(json!({ "serverName": name }));
    }
    if let Some(command) = object.get("command") {
        return Some(json!({ "serverCommand": command }));
    }
    object.get("url").map(|url| json!({ "serverUrl": url }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_tokens() {
        for ok in ["github", "my_server", "a-b"] {
            assert!(tool_server_name(ok).is_ok());
        }
        for (bad, why) in [
            ("", "empty"),
            ("a__b", "must not contain __"),
            ("_a", "start or end"),
            ("a.b", "may only contain"),
        ] {
            assert!(tool_server_name(bad).unwrap_err().contains(why), "{bad}");
        }
    }

    #[test]
    fn matchers() {
        assert_eq!(
            matcher(&json!("claude.ai Slack")),
            Ok(json!({"name": "claude.ai Slack"}))
        );
        assert_eq!(
            matcher(&json!({"command": ["npx", "-y", "x"]})),
            Ok(json!({"command": ["npx", "-y", "x"]}))
        );
        assert!(matcher(&json!({"url": "https://mcp.example.com/*"})).is_ok());
        for (bad, why) in [
            (json!({}), "exactly one"),
            (json!({"name": "a", "url": "https://x"}), "exactly one"),
            (json!({"command": []}), "program and its arguments"),
            (json!({"command": [1]}), "every element"),
            (json!({"url": "ftp://x"}), "starts with https://"),
            (json!({"host": "x"}), "unknown matcher"),
            (json!(3), "expected"),
        ] {
            let e = matcher(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(
            to_claude(&json!({"command": ["a"]})),
            Some(json!({"serverCommand": ["a"]}))
        );
    }
}
