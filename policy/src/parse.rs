//! Policy files (JSON or TOML) to a [`Policy`], reporting every problem at once: a syntax
//! error (with line and column; nothing else can be checked then), then every unknown key,
//! wrong type and invalid entry.

use serde_json::{Map, Value};

use crate::document::{Loaded, Policy};
use crate::error::{PolicyError, PolicyErrors, PolicyFormat};

/// Parses and checks a policy file's text (version 1 is migrated, with a notice). A leading
/// byte-order mark is ignored. In JSON, `null` means the same as leaving a key out.
pub fn parse_policy(format: PolicyFormat, text: &str) -> Result<Loaded, PolicyErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document = match format {
        PolicyFormat::Json => {
            serde_json::from_str::<Value>(text).map_err(|e| PolicyError::Syntax {
                format,
                line: e.line().max(1),
                column: e.column().max(1),
                message: strip_position(&e.to_string()),
            })
        }
        PolicyFormat::Toml => toml::from_str::<toml::Table>(text)
            .map(|t| toml_to_json(toml::Value::Table(t)))
            .map_err(|e| {
                let (line, column) = e.span().map_or((1, 1), |span| position(text, span.start));
                PolicyError::Syntax {
                    format,
                    line,
                    column,
                    message: e.message().to_owned(),
                }
            }),
    }
    .map_err(PolicyErrors::one)?;
    if !document.is_object() {
        return Err(PolicyErrors::one(PolicyError::Syntax {
            format,
            line: 1,
            column: 1,
            message: "a policy is a table of keys at the top level".to_owned(),
        }));
    }
    Policy::from_value(&document)
}

/// serde_json's message without its " at line L column C" tail (we print our own).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// 1-based line and character column of byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        // No key takes a date; keep the text so the type error names it.
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_read_the_same() {
        let toml = r#"
security_level = "strict"
[permissions]
deny = ["Bash(curl *)", "WebFetch"]
[files]
deny_read = ["~/.ssh", "**/.env"]
[[mcp.allowed]]
url = "https://mcp.example.com/*"
"#;
        let json = r#"{"security_level":"strict","permissions":{"deny":["WebFetch","Bash(curl *)"]},
            "files":{"deny_read":["**/.env","~/.ssh"]},"mcp":{"allowed":[{"url":"https://mcp.example.com/*"}]}}"#;
        let a = parse_policy(PolicyFormat::Toml, toml).unwrap();
        let b = parse_policy(PolicyFormat::Json, json).unwrap();
        assert_eq!(a.policy, b.policy);
        assert!(a.notices.is_empty());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse_policy(PolicyFormat::Json, "{\n  \"a\": [1,\n}").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("JSON syntax error at line 3, column 1"),
            "{text}"
        );
        let e = parse_policy(PolicyFormat::Toml, "a = [\nb = 1").unwrap_err();
        assert!(
            e.to_string().starts_with("TOML syntax error at line"),
            "{e}"
        );
        let e = parse_policy(PolicyFormat::Json, "[1]").unwrap_err();
        assert!(e.to_string().contains("table of keys"), "{e}");
        assert!(parse_policy(PolicyFormat::Json, "\u{feff}{}").is_ok());
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(
            PolicyFormat::from_path_name("p.JSON"),
            Ok(PolicyFormat::Json)
        );
        assert_eq!(
            PolicyFormat::from_path_name("C:\\x\\p.toml"),
            Ok(PolicyFormat::Toml)
        );
        assert!(PolicyFormat::from_path_name("p.yaml").is_err());
    }
}
