//! Policy files (JSON or TOML) to [`PolicyOverride`], reporting every problem at once.
//!
//! The text is first parsed into a generic document (a syntax error stops there, with its line
//! and column); then every field is checked on its own, so that one run lists every unknown
//! field, wrong type and invalid entry, each with its field and index.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::rules::{self, quote};
use super::{PolicyOverride, SecurityLevel};

/// The syntax of a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyFormat {
    /// `*.json`
    Json,
    /// `*.toml`
    Toml,
}

impl PolicyFormat {
    /// The format named by a file name's extension (`policy.json`, `C:\p\Policy.TOML`),
    /// case-insensitively. Only the name is looked at; nothing is read.
    pub fn from_path_name(name: &str) -> Result<PolicyFormat, UnsupportedFormat> {
        let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let extension = file
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase());
        match extension.as_deref() {
            Some("json") => Ok(PolicyFormat::Json),
            Some("toml") => Ok(PolicyFormat::Toml),
            _ => Err(UnsupportedFormat {
                name: name.to_owned(),
            }),
        }
    }

    /// `JSON` or `TOML`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyFormat::Json => "JSON",
            PolicyFormat::Toml => "TOML",
        }
    }
}

impl fmt::Display for PolicyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy file name whose extension is neither `.json` nor `.toml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot tell the format of policy file {}: name it *.json or *.toml", quote(.name))]
pub struct UnsupportedFormat {
    /// The name as given.
    pub name: String,
}

/// One problem in a policy file or a [`PolicyOverride`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The text is not valid JSON or TOML (or a JSON document that is not an object). Line
    /// and column are 1-based; the column counts characters.
    Syntax {
        format: PolicyFormat,
        line: usize,
        column: usize,
        message: String,
    },
    /// A field the policy does not have.
    UnknownField {
        field: String,
        /// The known field it probably meant.
        suggestion: Option<&'static str>,
    },
    /// A field given twice (JSON; TOML reports it as a syntax error).
    DuplicateField { field: &'static str },
    /// A field, or one entry of a list (`index`), of the wrong type.
    WrongType {
        field: &'static str,
        index: Option<usize>,
        expected: &'static str,
        found: &'static str,
    },
    /// `security_level` is not one of the levels.
    UnknownLevel(ParseLevelError),
    /// One entry of a list breaks the field's rule (see [`super::rules`]).
    InvalidEntry {
        field: &'static str,
        index: usize,
        message: String,
    },
}

impl PolicyError {
    /// The field the error is about (`None` for a syntax error).
    pub fn field(&self) -> Option<&str> {
        match self {
            PolicyError::Syntax { .. } => None,
            PolicyError::UnknownField { field, .. } => Some(field),
            PolicyError::DuplicateField { field }
            | PolicyError::WrongType { field, .. }
            | PolicyError::InvalidEntry { field, .. } => Some(field),
            PolicyError::UnknownLevel(_) => Some(SECURITY_LEVEL),
        }
    }

    /// The position in the field's list, when the error is about one entry.
    pub fn index(&self) -> Option<usize> {
        match self {
            PolicyError::WrongType { index, .. } => *index,
            PolicyError::InvalidEntry { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// Sort key: syntax first, then fields in declaration order (unknown ones last), then index.
    fn rank(&self) -> (usize, usize) {
        let field_rank = match self {
            PolicyError::Syntax { .. } => 0,
            other => other
                .field()
                .and_then(|f| FIELDS.iter().position(|known| *known == f))
                .map_or(FIELDS.len() + 1, |p| p + 1),
        };
        (field_rank, self.index().map_or(0, |i| i + 1))
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Syntax {
                format,
                line,
                column,
                message,
            } => write!(
                f,
                "{format} syntax error at line {line}, column {column}: {message}"
            ),
            PolicyError::UnknownField { field, suggestion } => {
                let plain = !field.is_empty()
                    && field
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if plain {
                    write!(f, "{field}: unknown field (")?;
                } else {
                    write!(f, "{}: unknown field (", quote(field))?;
                }
                if let Some(s) = suggestion {
                    write!(f, "did you mean {s}? ")?;
                }
                write!(f, "known fields: {})", FIELDS.join(", "))
            }
            PolicyError::DuplicateField { field } => write!(f, "{field}: given more than once"),
            PolicyError::WrongType {
                field,
                index,
                expected,
                found,
            } => {
                f.write_str(field)?;
                if let Some(i) = index {
                    write!(f, "[{i}]")?;
                }
                write!(f, ": expected {expected}, found {found}")
            }
            PolicyError::UnknownLevel(e) => write!(f, "{SECURITY_LEVEL}: {e}"),
            PolicyError::InvalidEntry {
                field,
                index,
                message,
            } => write!(f, "{field}[{index}]: {message}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found in a policy (never empty). `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(Vec<PolicyError>);

impl PolicyErrors {
    /// The errors in a stable order: syntax, then by field (declaration order), then index.
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }

    /// How many problems were found (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors, or `Ok(())` when there are none.
    fn check(mut errors: Vec<PolicyError>) -> Result<(), PolicyErrors> {
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort_by_key(PolicyError::rank);
        Err(PolicyErrors(errors))
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl IntoIterator for PolicyErrors {
    type Item = PolicyError;
    type IntoIter = std::vec::IntoIter<PolicyError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A `security_level` that is not one of the levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLevelError {
    /// The value as given.
    pub value: String,
}

impl fmt::Display for ParseLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = SecurityLevel::ALL.iter().map(|l| l.as_str()).collect();
        write!(
            f,
            "unknown level {} (expected {}",
            quote(&self.value),
            names.join(", ")
        )?;
        if names.iter().any(|n| n.eq_ignore_ascii_case(&self.value)) {
            f.write_str("; levels are lowercase")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for ParseLevelError {}

pub(super) const BLOCKED_TOOLS: &str = "blocked_tools";
pub(super) const SECURITY_LEVEL: &str = "security_level";
pub(super) const BLOCKED_WRITE_PATHS: &str = "blocked_write_paths";
pub(super) const ALLOWED_SKILLS: &str = "allowed_skills";
pub(super) const BLOCKED_MCP_SERVERS: &str = "blocked_mcp_servers";
pub(super) const ALLOWED_WEB_DOMAINS: &str = "allowed_web_domains";

/// Every field of a policy file, in declaration order.
pub const FIELDS: &[&str] = &[
    BLOCKED_TOOLS,
    SECURITY_LEVEL,
    BLOCKED_WRITE_PATHS,
    ALLOWED_SKILLS,
    BLOCKED_MCP_SERVERS,
    ALLOWED_WEB_DOMAINS,
];

/// The rule of each list field's entries.
fn entry_rule(field: &str) -> fn(&str) -> Result<(), String> {
    match field {
        BLOCKED_TOOLS => rules::validate_tool_name,
        BLOCKED_WRITE_PATHS => rules::validate_write_path,
        ALLOWED_SKILLS => rules::validate_skill_name,
        BLOCKED_MCP_SERVERS => rules::validate_mcp_server_name,
        _ => rules::validate_domain,
    }
}

fn check_entries<'a>(
    field: &'static str,
    entries: impl IntoIterator<Item = (usize, &'a str)>,
    errors: &mut Vec<PolicyError>,
) {
    let rule = entry_rule(field);
    for (index, entry) in entries {
        if let Err(message) = rule(entry) {
            errors.push(PolicyError::InvalidEntry {
                field,
                index,
                message,
            });
        }
    }
}

impl PolicyOverride {
    /// Checks every entry of every list (the rules the agent applies), reporting every
    /// problem. [`parse_policy`] already does this; call it on an override built in code or
    /// read back from storage.
    pub fn validate(&self) -> Result<(), PolicyErrors> {
        let mut errors = Vec::new();
        let lists: [(&'static str, Option<&Vec<String>>); 5] = [
            (BLOCKED_TOOLS, Some(&self.blocked_tools)),
            (BLOCKED_WRITE_PATHS, Some(&self.blocked_write_paths)),
            (ALLOWED_SKILLS, self.allowed_skills.as_ref()),
            (BLOCKED_MCP_SERVERS, Some(&self.blocked_mcp_servers)),
            (ALLOWED_WEB_DOMAINS, self.allowed_web_domains.as_ref()),
        ];
        for (field, list) in lists {
            if let Some(list) = list {
                let entries = list.iter().enumerate().map(|(i, s)| (i, s.as_str()));
                check_entries(field, entries, &mut errors);
            }
        }
        PolicyErrors::check(errors)
    }
}

/// Parses and validates a policy file's text. Every problem is reported at once: syntax errors
/// (with line and column; nothing else can be checked then), unknown or repeated fields, wrong
/// types, an unknown level, and each invalid list entry with its field and index.
///
/// Fields may be omitted: an omitted list is empty, an omitted `security_level` sets no
/// level, an omitted `allowed_skills` / `allowed_web_domains` is no restriction. In JSON,
/// `null` means the same as omitting an optional field (`security_level`, `allowed_skills`,
/// `allowed_web_domains`); TOML has no null. Levels are lowercase, as the agent expects.
pub fn parse_policy(format: PolicyFormat, text: &str) -> Result<PolicyOverride, PolicyErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document = match format {
        PolicyFormat::Json => parse_json(text),
        PolicyFormat::Toml => parse_toml(text),
    }
    .map_err(|e| PolicyErrors(vec![e]))?;

    let mut errors = Vec::new();
    let mut policy = PolicyOverride::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for (key, value) in document {
        let Some(field) = FIELDS.iter().copied().find(|f| *f == key) else {
            let suggestion = suggest_field(&key);
            errors.push(PolicyError::UnknownField {
                field: key,
                suggestion,
            });
            continue;
        };
        if seen.contains(&field) {
            errors.push(PolicyError::DuplicateField { field });
            continue;
        }
        seen.push(field);
        match field {
            SECURITY_LEVEL => policy.security_level = level_of(value, &mut errors),
            BLOCKED_TOOLS => policy.blocked_tools = list_of(field, value, &mut errors),
            BLOCKED_WRITE_PATHS => policy.blocked_write_paths = list_of(field, value, &mut errors),
            BLOCKED_MCP_SERVERS => policy.blocked_mcp_servers = list_of(field, value, &mut errors),
            ALLOWED_SKILLS => policy.allowed_skills = optional_list_of(field, value, &mut errors),
            _ => policy.allowed_web_domains = optional_list_of(field, value, &mut errors),
        }
    }
    PolicyErrors::check(errors)?;
    Ok(policy)
}

/// A parsed value, reduced to what the checks need.
#[derive(Debug)]
enum Raw {
    Null,
    Bool,
    Number,
    Str(String),
    List(Vec<Raw>),
    Object,
    Table,
    Datetime,
}

impl Raw {
    fn describe(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool => "a boolean",
            Raw::Number => "a number",
            Raw::Str(_) => "a string",
            Raw::List(_) => "a list",
            Raw::Object => "an object",
            Raw::Table => "a table",
            Raw::Datetime => "a date-time",
        }
    }

    fn from_json(value: serde_json::Value) -> Raw {
        use serde_json::Value;
        match value {
            Value::Null => Raw::Null,
            Value::Bool(_) => Raw::Bool,
            Value::Number(_) => Raw::Number,
            Value::String(s) => Raw::Str(s),
            Value::Array(items) => Raw::List(items.into_iter().map(Raw::from_json).collect()),
            Value::Object(_) => Raw::Object,
        }
    }

    fn from_toml(value: toml::Value) -> Raw {
        use toml::Value;
        match value {
            Value::Boolean(_) => Raw::Bool,
            Value::Integer(_) | Value::Float(_) => Raw::Number,
            Value::String(s) => Raw::Str(s),
            Value::Array(items) => Raw::List(items.into_iter().map(Raw::from_toml).collect()),
            Value::Table(_) => Raw::Table,
            Value::Datetime(_) => Raw::Datetime,
        }
    }
}

fn level_of(value: Raw, errors: &mut Vec<PolicyError>) -> Option<SecurityLevel> {
    match value {
        Raw::Null => None,
        Raw::Str(s) => match s.parse() {
            Ok(level) => Some(level),
            Err(e) => {
                errors.push(PolicyError::UnknownLevel(e));
                None
            }
        },
        other => {
            errors.push(PolicyError::WrongType {
                field: SECURITY_LEVEL,
                index: None,
                expected: "a string (minimal, moderate, strict or paranoid)",
                found: other.describe(),
            });
            None
        }
    }
}

/// The strings of a list field, each checked; `None` (with an error) when it is not a list.
fn strings_of(
    field: &'static str,
    value: Raw,
    errors: &mut Vec<PolicyError>,
) -> Option<Vec<String>> {
    let Raw::List(items) = value else {
        errors.push(PolicyError::WrongType {
            field,
            index: None,
            expected: "a list of strings",
            found: value.describe(),
        });
        return None;
    };
    let mut strings = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Raw::Str(s) => {
                check_entries(field, [(index, s.as_str())], errors);
                strings.push(s);
            }
            other => errors.push(PolicyError::WrongType {
                field,
                index: Some(index),
                expected: "a string",
                found: other.describe(),
            }),
        }
    }
    Some(strings)
}

fn list_of(field: &'static str, value: Raw, errors: &mut Vec<PolicyError>) -> Vec<String> {
    strings_of(field, value, errors).unwrap_or_default()
}

fn optional_list_of(
    field: &'static str,
    value: Raw,
    errors: &mut Vec<PolicyError>,
) -> Option<Vec<String>> {
    match value {
        Raw::Null => None,
        other => strings_of(field, other, errors),
    }
}

/// The known field an unknown key probably meant: the same name in another case or style
/// (`blockedTools`, `Blocked-Tools`), a close spelling, or a field containing it (`level`).
fn suggest_field(key: &str) -> Option<&'static str> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let key = squash(key);
    if key.is_empty() {
        return None;
    }
    let candidates = FIELDS.iter().map(|f| (*f, squash(f)));
    if let Some((field, _)) = candidates.clone().find(|(_, f)| *f == key) {
        return Some(field);
    }
    if let Some((_, field)) = candidates
        .clone()
        .map(|(field, f)| (rules::edit_distance(&f, &key), field))
        .filter(|(d, _)| *d <= 3)
        .min()
    {
        return Some(field);
    }
    let mut containing = candidates.filter(|(_, f)| key.len() >= 4 && f.contains(key.as_str()));
    match (containing.next(), containing.next()) {
        (Some((field, _)), None) => Some(field),
        _ => None,
    }
}

/// The top level of a JSON policy: every entry in document order, duplicates kept.
struct JsonFields(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for JsonFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = JsonFields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of policy fields")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonFields, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(JsonFields(entries))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

fn parse_json(text: &str) -> Result<Vec<(String, Raw)>, PolicyError> {
    match serde_json::from_str::<JsonFields>(text) {
        Ok(JsonFields(entries)) => Ok(entries
            .into_iter()
            .map(|(k, v)| (k, Raw::from_json(v)))
            .collect()),
        Err(e) => {
            let (line, byte_column) = (e.line(), e.column());
            let full = e.to_string();
            let suffix = format!(" at line {line} column {byte_column}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            Err(PolicyError::Syntax {
                format: PolicyFormat::Json,
                line: line.max(1),
                column: char_column(text, line, byte_column),
                message,
            })
        }
    }
}

fn parse_toml(text: &str) -> Result<Vec<(String, Raw)>, PolicyError> {
    match text.parse::<toml::Table>() {
        Ok(table) => Ok(table
            .into_iter()
            .map(|(k, v)| (k, Raw::from_toml(v)))
            .collect()),
        Err(e) => {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            let message = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            Err(PolicyError::Syntax {
                format: PolicyFormat::Toml,
                line,
                column,
                message,
            })
        }
    }
}

/// The 1-based column, in characters, of serde_json's 1-based byte column on a 1-based line
/// (serde_json says column 0 before the first character of a line).
fn char_column(text: &str, line: usize, byte_column: usize) -> usize {
    let Some(line_text) = text.split('\n').nth(line.saturating_sub(1)) else {
        return byte_column.max(1);
    };
    let mut end = byte_column.min(line_text.len());
    while !line_text.is_char_boundary(end) {
        end += 1;
    }
    line_text.get(..end).map_or(1, |p| p.chars().count().max(1))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Result<PolicyOverride, PolicyErrors> {
        parse_policy(PolicyFormat::Json, text)
    }

    fn toml(text: &str) -> Result<PolicyOverride, PolicyErrors> {
        parse_policy(PolicyFormat::Toml, text)
    }

    fn messages(result: Result<PolicyOverride, PolicyErrors>) -> Vec<String> {
        result
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn full() -> PolicyOverride {
        PolicyOverride {
            blocked_tools: vec!["Bash".into(), "mcp__github__*".into()],
            security_level: Some(SecurityLevel::Strict),
            blocked_write_paths: vec!["/etc".into(), "C:\\Users\\Public".into()],
            allowed_skills: Some(vec!["pdf".into(), "docx".into()]),
            blocked_mcp_servers: vec!["filesystem".into()],
            allowed_web_domains: Some(vec!["docs.rs".into(), "*.example.com".into()]),
        }
    }

    #[test]
    fn formats_from_file_names() {
        for (name, format) in [
            ("policy.json", PolicyFormat::Json),
            ("/etc/palisade/p.toml", PolicyFormat::Toml),
            ("C:\\p\\Policy.TOML", PolicyFormat::Toml),
            ("a.b.Json", PolicyFormat::Json),
        ] {
            assert_eq!(PolicyFormat::from_path_name(name), Ok(format), "{name}");
        }
        for name in ["policy.yaml", "policy", "json", "dir.json/policy", ""] {
            let err = PolicyFormat::from_path_name(name).unwrap_err();
            assert!(
                err.to_string().contains("name it *.json or *.toml"),
                "{err}"
            );
        }
    }

    #[test]
    fn parses_the_documented_json_example() {
        let p = json(
            r#"{
              "blocked_tools": ["Bash", "mcp__github__*"],
              "security_level": "strict",
              "blocked_write_paths": ["/etc", "C:\\Users\\Public"],
              "allowed_skills": ["pdf", "docx"],
              "blocked_mcp_servers": ["filesystem"],
              "allowed_web_domains": ["docs.rs", "*.example.com"]
            }"#,
        )
        .unwrap();
        assert_eq!(p, full());
    }

    #[test]
    fn parses_the_same_policy_in_toml() {
        let p = toml(
            r#"
            # Contractors
            blocked_tools = ["Bash", "mcp__github__*"]
            security_level = "strict"
            blocked_write_paths = ["/etc", 'C:\Users\Public']
            allowed_skills = ["pdf", "docx"]
            blocked_mcp_servers = ["filesystem"]
            allowed_web_domains = ["docs.rs", "*.example.com"]
            "#,
        )
        .unwrap();
        assert_eq!(p, full());
    }

    #[test]
    fn omitted_fields_and_nulls() {
        assert_eq!(json("{}").unwrap(), PolicyOverride::default());
        assert_eq!(toml("").unwrap(), PolicyOverride::default());
        assert_eq!(
            json(
                r#"{"security_level": null, "allowed_skills": null, "allowed_web_domains": null}"#
            )
            .unwrap(),
            PolicyOverride::default()
        );
        // An empty allow-list is a restriction (nothing allowed), unlike an absent one.
        let p = json(r#"{"allowed_skills": [], "allowed_web_domains": []}"#).unwrap();
        assert_eq!(p.allowed_skills, Some(vec![]));
        assert_eq!(p.allowed_web_domains, Some(vec![]));
        let p = toml("allowed_skills = []").unwrap();
        assert_eq!(p.allowed_skills, Some(vec![]));
        // A BOM (Windows editors) is ignored.
        assert_eq!(json("\u{feff}{}").unwrap(), PolicyOverride::default());
        assert_eq!(toml("\u{feff}").unwrap(), PolicyOverride::default());
    }

    #[test]
    fn the_brief_examples() {
        let errs = messages(json(
            r#"{"blocked_tools": ["Bash", "Read", "Bsh"],
                "blocked_write_paths": ["src/x"],
                "security_level": "high"}"#,
        ));
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].starts_with("blocked_tools[2]: unknown tool \"Bsh\" (did you mean \"Bash\"? known: Agent, Bash, "),
            "{}",
            errs[0]
        );
        assert_eq!(
            errs[1],
            "security_level: unknown level \"high\" (expected minimal, moderate, strict, paranoid)"
        );
        assert_eq!(
            errs[2],
            "blocked_write_paths[0]: \"src/x\" is relative; give an absolute path (/dir or C:\\dir)"
        );
    }

    #[test]
    fn every_error_at_once_with_field_and_index() {
        let err = json(
            r#"{
              "blocked_tool": ["Bash"],
              "blocked_tools": ["bash", 3, "Write(/etc)", "Bash"],
              "security_level": 2,
              "blocked_write_paths": ["/ok", "~/x", "/a/*"],
              "allowed_skills": ["pdf", "a b"],
              "blocked_mcp_servers": "github",
              "allowed_web_domains": ["https://x.com", null],
              "level": "strict"
            }"#,
        )
        .unwrap_err();
        let got: Vec<(Option<String>, Option<usize>)> = err
            .errors()
            .iter()
            .map(|e| (e.field().map(str::to_owned), e.index()))
            .collect();
        let expected: Vec<(Option<String>, Option<usize>)> = vec![
            (Some("blocked_tools".into()), Some(0)),
            (Some("blocked_tools".into()), Some(1)),
            (Some("blocked_tools".into()), Some(2)),
            (Some("security_level".into()), None),
            (Some("blocked_write_paths".into()), Some(1)),
            (Some("blocked_write_paths".into()), Some(2)),
            (Some("allowed_skills".into()), Some(1)),
            (Some("blocked_mcp_servers".into()), None),
            (Some("allowed_web_domains".into()), Some(0)),
            (Some("allowed_web_domains".into()), Some(1)),
            (Some("blocked_tool".into()), None),
            (Some("level".into()), None),
        ];
        assert_eq!(got, expected, "{err}");

        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{text}");
        assert_eq!(
            lines,
            vec![
                "blocked_tools[0]: unknown tool \"bash\" (tool names are case-sensitive: did you mean \"Bash\"?)",
                "blocked_tools[1]: expected a string, found a number",
                "blocked_tools[2]: \"Write(/etc)\": Claude Code never consults Write(path) rules; list the path in blocked_write_paths instead",
                "security_level: expected a string (minimal, moderate, strict or paranoid), found a number",
                "blocked_write_paths[1]: \"~/x\" is relative to a home directory; give an absolute path (/dir or C:\\dir)",
                "blocked_write_paths[2]: \"/a/*\": glob characters (* ? [ ]) are not supported; give the directory (everything under it is blocked)",
                "allowed_skills[1]: skill name \"a b\" may only contain letters, digits, -, _, . and :",
                "blocked_mcp_servers: expected a list of strings, found a string",
                "allowed_web_domains[0]: \"https://x.com\": give the domain only, without a scheme",
                "allowed_web_domains[1]: expected a string, found null",
                "blocked_tool: unknown field (did you mean blocked_tools? known fields: blocked_tools, security_level, blocked_write_paths, allowed_skills, blocked_mcp_servers, allowed_web_domains)",
                "level: unknown field (did you mean security_level? known fields: blocked_tools, security_level, blocked_write_paths, allowed_skills, blocked_mcp_servers, allowed_web_domains)",
            ]
        );
    }

    #[test]
    fn toml_errors_at_once() {
        let errs = messages(toml(
            r#"
            blocked_tools = ["Bash", "Grepp"]
            security_level = "Strict"
            blocked_write_paths = "/etc"
            allowed_skills = [1, "ok"]
            allowed_web_domains = ["x.com:443"]
            created = 1979-05-27T07:32:00Z
            [extra]
            a = 1
            "#,
        ));
        assert_eq!(
            errs,
            vec![
                "blocked_tools[1]: unknown tool \"Grepp\" (did you mean \"Grep\"? known: Agent, Bash, Edit, Glob, Grep, LSP, NotebookEdit, PowerShell, Read, Skill, Task, WebFetch, WebSearch, Write, or mcp__*, mcp__<server>__*, mcp__<server>__<tool>)".to_owned(),
                "security_level: unknown level \"Strict\" (expected minimal, moderate, strict, paranoid; levels are lowercase)".to_owned(),
                "blocked_write_paths: expected a list of strings, found a string".to_owned(),
                "allowed_skills[0]: expected a string, found a number".to_owned(),
                "allowed_web_domains[0]: \"x.com:443\": give the domain only, without a port".to_owned(),
                "created: unknown field (known fields: blocked_tools, security_level, blocked_write_paths, allowed_skills, blocked_mcp_servers, allowed_web_domains)".to_owned(),
                "extra: unknown field (known fields: blocked_tools, security_level, blocked_write_paths, allowed_skills, blocked_mcp_servers, allowed_web_domains)".to_owned(),
            ]
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let errs = messages(toml(
            "security_level = true\nallowed_skills = \"pdf\"\nblocked_tools = [[\"Bash\"], {a = 1}, 1.5, 1979-05-27]",
        ));
        assert_eq!(
            errs,
            vec![
                "blocked_tools[0]: expected a string, found a list",
                "blocked_tools[1]: expected a string, found a table",
                "blocked_tools[2]: expected a string, found a number",
                "blocked_tools[3]: expected a string, found a date-time",
                "security_level: expected a string (minimal, moderate, strict or paranoid), found a boolean",
                "allowed_skills: expected a list of strings, found a string",
            ]
        );
        let errs = messages(json(
            r#"{"blocked_tools": null, "blocked_write_paths": {"a": 1}, "allowed_skills": false}"#,
        ));
        assert_eq!(
            errs,
            vec![
                "blocked_tools: expected a list of strings, found null",
                "blocked_write_paths: expected a list of strings, found an object",
                "allowed_skills: expected a list of strings, found a boolean",
            ]
        );
    }

    #[test]
    fn json_syntax_errors_have_line_and_column() {
        let err = json("{\n  \"blocked_tools\": [\"Bash\"\n  \"security_level\": \"strict\"\n}")
            .unwrap_err();
        assert_eq!(err.len(), 1);
        match &err.errors()[0] {
            PolicyError::Syntax {
                format,
                line,
                column,
                message,
            } => {
                assert_eq!(*format, PolicyFormat::Json);
                assert_eq!((*line, *column), (3, 3));
                assert!(message.contains("expected"), "{message}");
                assert!(!message.contains("at line"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("JSON syntax error at line 3, column 3: "),
            "{err}"
        );

        for (text, needle) in [
            ("", "EOF"),
            ("[\"Bash\"]", "expected a JSON object of policy fields"),
            ("{\"blocked_tools\": [\"Bash\"],}", "trailing comma"),
            ("{} {}", "trailing characters"),
        ] {
            let err = json(text).unwrap_err().to_string();
            assert!(
                err.starts_with("JSON syntax error at line 1"),
                "{text}: {err}"
            );
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn toml_syntax_errors_have_line_and_column() {
        let err = toml("blocked_tools = [\"Bash\"]\nsecurity_level = strict\n").unwrap_err();
        assert_eq!(err.len(), 1);
        match &err.errors()[0] {
            PolicyError::Syntax {
                format,
                line,
                column,
                ..
            } => {
                assert_eq!(*format, PolicyFormat::Toml);
                assert_eq!((*line, *column), (2, 18));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with("TOML syntax error at line 2, column 18: "),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");

        // TOML reports a repeated key as a syntax error.
        let text = toml("blocked_tools = []\nblocked_tools = [\"Bash\"]")
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("TOML syntax error at line 2, column 1"),
            "{text}"
        );
    }

    #[test]
    fn odd_unknown_keys_are_quoted_on_one_line() {
        let errs = messages(json(r#"{"a\nb": 1, "": 2, "with space": 3}"#));
        assert_eq!(errs.len(), 3);
        assert!(
            errs[0].starts_with("\"a\\nb\": unknown field ("),
            "{}",
            errs[0]
        );
        assert!(errs[1].starts_with("\"\": unknown field ("), "{}", errs[1]);
        assert!(
            errs[2].starts_with("\"with space\": unknown field ("),
            "{}",
            errs[2]
        );
        assert!(errs.iter().all(|e| !e.contains('\n')));
    }

    #[test]
    fn duplicate_json_fields_are_refused() {
        let errs = messages(json(
            r#"{"blocked_tools": ["Bash"], "blocked_tools": ["Read"]}"#,
        ));
        assert_eq!(errs, vec!["blocked_tools: given more than once"]);
    }

    #[test]
    fn field_suggestions() {
        for (key, suggestion) in [
            ("blockedTools", Some("blocked_tools")),
            ("Blocked-Tools", Some("blocked_tools")),
            ("blocked_tool", Some("blocked_tools")),
            ("allowed_skill", Some("allowed_skills")),
            ("blocked_mcp", Some("blocked_mcp_servers")),
            ("level", Some("security_level")),
            ("allowed_domains", Some("allowed_web_domains")),
            ("blocked", None),
            ("colour", None),
            ("", None),
        ] {
            assert_eq!(suggest_field(key), suggestion, "{key}");
        }
    }

    #[test]
    fn validate_checks_a_built_override() {
        assert_eq!(full().validate(), Ok(()));
        assert_eq!(PolicyOverride::default().validate(), Ok(()));
        let bad = PolicyOverride {
            blocked_tools: vec!["Bash".into(), "Bash(x)".into()],
            blocked_write_paths: vec!["rel".into()],
            allowed_skills: Some(vec!["".into()]),
            blocked_mcp_servers: vec!["a__b".into()],
            allowed_web_domains: Some(vec!["*".into()]),
            ..PolicyOverride::default()
        };
        let err = bad.validate().unwrap_err();
        let located: Vec<(Option<&str>, Option<usize>)> = err
            .errors()
            .iter()
            .map(|e| (e.field(), e.index()))
            .collect();
        assert_eq!(
            located,
            vec![
                (Some("blocked_tools"), Some(1)),
                (Some("blocked_write_paths"), Some(0)),
                (Some("allowed_skills"), Some(0)),
                (Some("blocked_mcp_servers"), Some(0)),
                (Some("allowed_web_domains"), Some(0)),
            ]
        );
    }

    #[test]
    fn parse_and_serde_agree() {
        // What parse_policy accepts, serde (the storage format) reads the same way, and the
        // serialized override parses back to itself.
        let texts = [
            "{}",
            r#"{"security_level": "paranoid", "allowed_skills": []}"#,
            r#"{"blocked_tools": ["Bash"], "allowed_web_domains": null}"#,
        ];
        for text in texts {
            let parsed = json(text).unwrap();
            let via_serde: PolicyOverride = serde_json::from_str(text).unwrap();
            assert_eq!(parsed, via_serde, "{text}");
        }
        let stored = serde_json::to_string(&full()).unwrap();
        assert_eq!(json(&stored).unwrap(), full());
        let stored = toml::to_string(&full()).unwrap();
        assert_eq!(toml(&stored).unwrap(), full());
        // serde refuses unknown fields too.
        assert!(serde_json::from_str::<PolicyOverride>(r#"{"blocked_tool": []}"#).is_err());
    }

    #[test]
    fn json_columns_count_characters() {
        assert_eq!(char_column("abc", 1, 0), 1);
        assert_eq!(char_column("abc", 1, 2), 2);
        assert_eq!(char_column("x\n\"é\" ]", 2, 5), 4);
        assert_eq!(char_column("x\n\"é", 2, 2), 2); // inside é: counts it
        assert_eq!(char_column("x", 5, 3), 3);
        let err = json("{\"allowed_skills\": [\"é\" \"x\"]}").unwrap_err();
        match &err.errors()[0] {
            PolicyError::Syntax { line, column, .. } => assert_eq!((*line, *column), (1, 25)),
            other => panic!("unexpected {other:?}"),
        }
        let err = json("[1]").unwrap_err().to_string();
        assert!(
            err.starts_with("JSON syntax error at line 1, column 1: "),
            "{err}"
        );
    }

    #[test]
    fn line_columns() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc", 2), (1, 3));
        assert_eq!(line_column("a\nbc", 3), (2, 2));
        assert_eq!(line_column("é\né", 5), (2, 2));
        assert_eq!(line_column("é\né", 4), (2, 1)); // inside a character
        assert_eq!(line_column("é", 1), (1, 1)); // inside a character
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
