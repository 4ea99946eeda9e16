//! The smaller entry kinds: skill and model names, versions, UUIDs, URLs, environment and
//! header names, marketplace sources, hook definitions, customization surfaces and free text.

use serde_json::{Map, Value};

use super::{plain_text, quote};

/// A skill name: 1 to 128 letters, digits, `-`, `_`, `.` or `:` (plugin skills are
/// `plugin:skill`).
pub fn skill(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty skill name".to_owned());
    }
    if name.len() > 128 {
        return Err(format!(
            "skill name {} is longer than 128 bytes",
            quote(name)
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!(
            "skill name {} may only contain letters, digits, -, _, . and :",
            quote(name)
        ));
    }
    Ok(name.to_owned())
}

/// A model alias (`sonnet`, `opus[1m]`) or model id (`claude-sonnet-4-5`,
/// `us.anthropic.claude-opus-4-1-v1:0`). `availableModels` fails closed on an invalid entry
/// (Claude Code refuses to start), so this is strict: lowercase ASCII only.
pub fn model(name: &str) -> Result<String, String> {
    plain_text("model name", name, 128)?;
    let base = name.strip_suffix("[1m]").unwrap_or(name);
    let ok = !base.is_empty()
        && base.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && base.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '-' | '.' | ':' | '_' | '@' | '/')
        });
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{}: a model is an alias (sonnet, opus, haiku, sonnet[1m]) or an id like \
             claude-sonnet-4-5 (lowercase letters, digits, - . : _ @ /)",
            quote(name)
        ))
    }
}

/// A Claude Code version `MAJOR.MINOR.PATCH`.
pub fn version(text: &str) -> Result<String, String> {
    parse_version(text).map(|v| format!("{}.{}.{}", v.0, v.1, v.2))
}

/// `MAJOR.MINOR.PATCH` as numbers, for ordering.
pub fn parse_version(text: &str) -> Result<(u64, u64, u64), String> {
    let bad = || {
        format!(
            "{}: a version is MAJOR.MINOR.PATCH, like 2.1.240",
            quote(text)
        )
    };
    let mut parts = text.split('.');
    let mut next = || -> Result<u64, String> {
        let part = parts.next().ok_or_else(bad)?;
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let version = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(version)
}

/// A UUID in its hyphenated form, lowercased.
pub fn uuid(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    let groups: Vec<&str> = lower.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "{}: not a UUID (8-4-4-4-12 hex digits)",
            quote(text)
        ))
    }
}

/// An `http(s)://` URL (the telemetry endpoint).
pub fn url(text: &str) -> Result<String, String> {
    plain_text("URL", text, 2048)?;
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("{}: a URL starts with https:// or http://", quote(text)))?;
    if rest.is_empty() || rest.starts_with('/') || text.contains(char::is_whitespace) {
        return Err(format!("{}: not a URL", quote(text)));
    }
    Ok(text.to_owned())
}

/// A URL pattern (`https://audit.example.com/*`) for allowed HTTP hook URLs.
pub fn url_pattern(text: &str) -> Result<String, String> {
    url(text)
}

/// A header or resource-attribute name: printable ASCII without separators.
pub fn token(text: &str) -> Result<String, String> {
    plain_text("name", text, 256)?;
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(text.to_owned())
    } else {
        Err(format!("{}: only letters, digits, -, _ and .", quote(text)))
    }
}

/// Free text shown to developers or given to the model (announcements).
pub fn line(text: &str) -> Result<String, String> {
    plain_text("text", text, 2000).map(|()| text.to_owned())
}

/// A telemetry attribute value (it may carry many group names).
pub fn attribute_value(text: &str) -> Result<String, String> {
    plain_text("value", text, 16 * 1024).map(|()| text.to_owned())
}

/// Long free text (an organisation-wide CLAUDE.md): newlines and tabs allowed.
pub fn document(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("empty text".to_owned());
    }
    if text.len() > 64 * 1024 {
        return Err("longer than 64 KiB".to_owned());
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("control characters other than newline and tab are not allowed".to_owned());
    }
    Ok(text.to_owned())
}

/// The surfaces of `strictPluginOnlyCustomization`.
pub const SURFACES: &[&str] = &["agents", "hooks", "mcp", "skills"];

/// One customization surface.
pub fn surface(text: &str) -> Result<String, String> {
    if SURFACES.contains(&text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{}: expected one of {}",
            quote(text),
            SURFACES.join(", ")
        ))
    }
}

/// A plugin marketplace source, as Claude Code writes it: `{source = "github", repo = "o/r"}`,
/// `{source = "git" | "url", url}`, `{source = "npm", package}`, `{source = "file" |
/// "directory", path}`, `{source = "hostPattern", hostPattern}`.
pub fn marketplace(value: &Value) -> Result<Value, String> {
    let Value::Object(object) = value else {
        return Err(
            "expected a table like {source = \"github\", repo = \"owner/name\"}".to_owned(),
        );
    };
    let source = object
        .get("source")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            "source: required (github, git, url, npm, file, directory, hostPattern)".to_owned()
        })?;
    let field = match source {
        "github" => "repo",
        "git" | "url" => "url",
        "npm" => "package",
        "file" | "directory" => "path",
        "hostPattern" => "hostPattern",
        other => {
            return Err(format!(
                "source {}: expected github, git, url, npm, file, directory or hostPattern",
                quote(other)
            ))
        }
    };
    let Some(Value::String(target)) = object.get(field) else {
        return Err(format!("source {source} needs {field} (a string)"));
    };
    plain_text(field, target, 1024)?;
    if let Some(extra) = object
        .keys()
        .find(|k| *k != "source" && *k != field && *k != "ref" && *k != "path")
    {
        return Err(format!(
            "unknown field {} for source {source}",
            quote(extra)
        ));
    }
    Ok(Value::Object(object.clone()))
}

/// Hook events Claude Code runs managed hooks on.
pub const HOOK_EVENTS: &[&str] = &[
    "Notification",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
    "PreCompact",
    "PreToolUse",
    "SessionEnd",
    "SessionStart",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "UserPromptSubmit",
];

/// One matcher group of a hook event: `{matcher = "Bash", hooks = [{type = "command",
/// command = "..."}]}`.
pub fn hook_group(value: &Value) -> Result<Value, String> {
    let Value::Object(group) = value else {
        return Err("expected {matcher = .., hooks = [..]}".to_owned());
    };
    if let Some(extra) = group.keys().find(|k| *k != "matcher" && *k != "hooks") {
        return Err(format!(
            "unknown field {} (expected matcher, hooks)",
            quote(extra)
        ));
    }
    if let Some(matcher) = group.get("matcher") {
        let Value::String(m) = matcher else {
            return Err("matcher: expected a string".to_owned());
        };
        if m.len() > 1024 || m.chars().any(char::is_control) {
            return Err("matcher: at most 1024 bytes, no control characters".to_owned());
        }
    }
    let Some(Value::Array(handlers)) = group.get("hooks") else {
        return Err("hooks: required, a list of handlers".to_owned());
    };
    if handlers.is_empty() {
        return Err("hooks: at least one handler".to_owned());
    }
    for (i, handler) in handlers.iter().enumerate() {
        hook_handler(handler).map_err(|e| format!("hooks[{i}]: {e}"))?;
    }
    Ok(Value::Object(group.clone()))
}

fn hook_handler(value: &Value) -> Result<(), String> {
    let Value::Object(handler) = value else {
        return Err("expected {type = .., ..}".to_owned());
    };
    let kind = handler
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (required, allowed): (&str, &[&str]) = match kind {
        "command" => (
            "command",
            &["type", "command", "timeout", "statusMessage", "async"],
        ),
        "http" => (
            "url",
            &[
                "type",
                "url",
                "timeout",
                "statusMessage",
                "headers",
                "allowedEnvVars",
            ],
        ),
        "prompt" | "agent" => (
            "prompt",
            &["type", "prompt", "timeout", "statusMessage", "model"],
        ),
        _ => return Err("type: expected command, http, prompt or agent".to_owned()),
    };
    match handler.get(required) {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        _ => return Err(format!("{required}: required for a {kind} hook")),
    }
    if kind == "http" {
        url(handler
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default())?;
    }
    if let Some(extra) = handler.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unknown field {} for a {kind} hook", quote(extra)));
    }
    if let Some(timeout) = handler.get("timeout") {
        if !timeout.as_u64().is_some_and(|t| (1..=3600).contains(&t)) {
            return Err("timeout: seconds, 1 to 3600".to_owned());
        }
    }
    Ok(())
}

/// Checks the event name of a hooks table.
pub fn hook_event(name: &str) -> Result<(), String> {
    if HOOK_EVENTS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown hook event {} (known: {})",
            quote(name),
            HOOK_EVENTS.join(", ")
        ))
    }
}

/// Keys of an object, for messages.
pub fn object_keys(object: &Map<String, Value>) -> String {
    object
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn models() {
        for ok in [
            "sonnet",
            "opus[1m]",
            "claude-sonnet-4-5",
            "us.anthropic.claude-opus-4-1-v1:0",
        ] {
            assert!(model(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Sonnet", "a b", "-x", "x[2m]"] {
            assert!(model(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(version("2.1.240").as_deref(), Ok("2.1.240"));
        assert_eq!(parse_version("10.0.1"), Ok((10, 0, 1)));
        for bad in ["", "2.1", "2.1.x", "2.1.0.1", "v2.1.0", "2..1"] {
            assert!(version(bad).is_err(), "{bad}");
        }
        assert!(parse_version("2.1.9") < parse_version("2.1.10"));
    }

    #[test]
    fn uuids_and_urls() {
        assert!(uuid("123E4567-e89b-12d3-a456-426614174000").is_ok());
        assert!(uuid("123e4567-e89b-12d3-a456-42661417400").is_err());
        assert!(url("https://otel.example.com:4318").is_ok());
        assert!(url("otel.example.com").is_err());
        assert!(url("https:///x").is_err());
    }

    #[test]
    fn marketplaces_and_hooks() {
        assert!(marketplace(&json!({"source": "github", "repo": "acme/plugins"})).is_ok());
        assert!(marketplace(&json!({"source": "github"}))
            .unwrap_err()
            .contains("needs repo"));
        assert!(marketplace(&json!({"source": "svn", "url": "x"})).is_err());
        let group =
            json!({"matcher": "Bash", "hooks": [{"type": "command", "command": "/bin/true"}]});
        assert!(hook_group(&group).is_ok());
        assert!(hook_group(&json!({"hooks": []})).is_err());
        assert!(hook_group(&json!({"hooks": [{"type": "shell", "command": "x"}]})).is_err());
        assert!(hook_group(&json!({"hooks": [{"type": "http", "url": "nope"}]})).is_err());
        assert!(hook_event("PreToolUse").is_ok());
        assert!(hook_event("BeforeTool").is_err());
    }
}
