//! The entry rules of every policy list, mirrored from the agent's validators
//! (`agent/src/settings.rs`: `validate_tool_name`, `validate_write_path`, `validate_skill_name`,
//! `validate_mcp_server_name`, `validate_domain`). The control plane must accept exactly what
//! the agent accepts: a value accepted here but refused there would be NACKed by every agent,
//! and a value refused here but accepted there would be a needless restriction. The table in
//! this module's tests documents each rule; keep it and the agent's tests in step.
//!
//! The messages are the control plane's own (they name the value in double quotes; the caller
//! prefixes the field and index).

/// Built-in tool names Claude Code accepts in permission rules (`Task` is an alias of `Agent`;
/// the agent always denies both together).
pub const KNOWN_TOOLS: &[&str] = &[
    "Agent",
    "Bash",
    "Edit",
    "Glob",
    "Grep",
    "LSP",
    "NotebookEdit",
    "PowerShell",
    "Read",
    "Skill",
    "Task",
    "WebFetch",
    "WebSearch",
    "Write",
];

/// The `blocked_tools` entry that denies every MCP tool.
pub const ALL_MCP_TOOLS: &str = "mcp__*";

/// Longest MCP server or skill name, in bytes.
const MAX_NAME_LEN: usize = 128;

/// Longest domain name, in bytes (without a leading `*.`).
const MAX_DOMAIN_LEN: usize = 253;

/// Longest domain label, in bytes.
const MAX_LABEL_LEN: usize = 63;

/// `s` in double quotes, with control characters, quotes and (only then) backslashes escaped,
/// so that a Windows path reads `"C:\dir"` rather than `"C:\\dir"`.
pub(crate) fn quote(s: &str) -> String {
    let needs_escape = s.chars().any(|c| c.is_control() || c == '"');
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if needs_escape && (c.is_control() || c == '"' || c == '\\') {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Levenshtein distance, for "did you mean" hints on short names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            let deletion = prev[j + 1] + 1;
            let insertion = cur[j] + 1;
            cur.push(substitution.min(deletion).min(insertion));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Checks a `blocked_tools` entry: a tool of [`KNOWN_TOOLS`] (case-sensitive), or an MCP
/// pattern `mcp__*`, `mcp__<server>__*`, `mcp__<server>__<tool>`. Specifiers (`Bash(rm *)`)
/// are not accepted.
pub fn validate_tool_name(name: &str) -> Result<(), String> {
    if KNOWN_TOOLS.contains(&name) {
        return Ok(());
    }
    if let Some(rest) = name.strip_prefix("mcp__") {
        return validate_mcp_pattern(name, rest);
    }
    if name.is_empty() {
        return Err("empty tool name".to_owned());
    }
    if let Some((tool, _)) = name.split_once('(') {
        if matches!(tool, "Write" | "NotebookEdit" | "MultiEdit") {
            return Err(format!(
                "{}: Claude Code never consults {tool}(path) rules; \
                 list the path in blocked_write_paths instead",
                quote(name)
            ));
        }
        return Err(format!(
            "{}: blocked_tools takes tool names without a (specifier)",
            quote(name)
        ));
    }
    let known = KNOWN_TOOLS.join(", ");
    let patterns = "mcp__*, mcp__<server>__*, mcp__<server>__<tool>";
    if let Some(tool) = KNOWN_TOOLS.iter().find(|t| t.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "unknown tool {} (tool names are case-sensitive: did you mean {}?)",
            quote(name),
            quote(tool)
        ));
    }
    let near = KNOWN_TOOLS
        .iter()
        .map(|t| {
            (
                edit_distance(&t.to_ascii_lowercase(), &name.to_ascii_lowercase()),
                t,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min();
    match near {
        Some((_, tool)) => Err(format!(
            "unknown tool {} (did you mean {}? known: {known}, or {patterns})",
            quote(name),
            quote(tool)
        )),
        None => Err(format!(
            "unknown tool {} (known: {known}, or {patterns})",
            quote(name)
        )),
    }
}

fn validate_mcp_pattern(name: &str, rest: &str) -> Result<(), String> {
    if rest == "*" {
        return Ok(());
    }
    let Some((server, tool)) = rest.split_once("__") else {
        return Err(format!(
            "{}: write mcp__<server>__* for every tool of a server, or mcp__* for all",
            quote(name)
        ));
    };
    validate_mcp_server_name(server).map_err(|e| format!("{}: {e}", quote(name)))?;
    let tool_ok = tool == "*"
        || (!tool.is_empty()
            && tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    if tool_ok {
        Ok(())
    } else {
        Err(format!(
            "{}: the MCP tool part must be * or letters, digits, _ and -",
            quote(name)
        ))
    }
}

/// Checks an MCP server name: 1 to 128 ASCII letters, digits, `_` and `-`, without `__` and
/// not starting or ending with `_` (so that `mcp__<server>__<tool>` stays unambiguous).
pub fn validate_mcp_server_name(server: &str) -> Result<(), String> {
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
    Ok(())
}

/// Checks a skill name: 1 to 128 ASCII letters, digits, `-`, `_`, `.` or `:` (plugin skills
/// are `plugin:skill`). Case-sensitive.
pub fn validate_skill_name(skill: &str) -> Result<(), String> {
    if skill.is_empty() {
        return Err("empty skill name".to_owned());
    }
    if skill.len() > MAX_NAME_LEN {
        return Err(format!(
            "skill name {} is longer than {MAX_NAME_LEN} bytes",
            quote(skill)
        ));
    }
    if !skill
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!(
            "skill name {} may only contain letters, digits, -, _, . and :",
            quote(skill)
        ));
    }
    Ok(())
}

/// Checks a web domain: a host name (`docs.rs`), optionally with a `*.` wildcard prefix; no
/// scheme, port or path. Case does not matter (the effective policy lowercases it).
pub fn validate_domain(domain: &str) -> Result<(), String> {
    if domain.contains("://") {
        return Err(format!(
            "{}: give the domain only, without a scheme",
            quote(domain)
        ));
    }
    if domain.contains('/') {
        return Err(format!(
            "{}: give the domain only, without a path",
            quote(domain)
        ));
    }
    if domain.contains(':') {
        return Err(format!(
            "{}: give the domain only, without a port",
            quote(domain)
        ));
    }
    let host = domain.strip_prefix("*.").unwrap_or(domain);
    if host.is_empty() || host.len() > MAX_DOMAIN_LEN {
        return Err(format!("{}: not a domain name", quote(domain)));
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "{}: not a domain name (labels of letters, digits and -; \
                 a wildcard only as a leading *.)",
                quote(domain)
            ));
        }
    }
    Ok(())
}

/// Checks a `blocked_write_paths` entry: an absolute Unix path (`/a/b`) or Windows path
/// (`C:\a\b` or `C:/a/b`), without `.`/`..` components, glob characters or surrounding
/// whitespace.
pub fn validate_write_path(path: &str) -> Result<(), String> {
    parse_write_path(path).map(|_| ())
}

/// The canonical spelling of a valid write path, as the agent's sandbox rule writes it:
/// `/a/b` (repeated and trailing `/` removed) or `C:\a\b` (upper-case drive, `\` separators).
/// An invalid path is returned unchanged (so that the agent refuses it rather than the
/// control plane silently dropping a restriction).
pub fn normalize_write_path(path: &str) -> String {
    match parse_write_path(path) {
        Ok(AbsPath::Unix(parts)) => format!("/{}", parts.join("/")),
        Ok(AbsPath::Windows { drive, parts }) => format!("{drive}:\\{}", parts.join("\\")),
        Err(_) => path.to_owned(),
    }
}

/// The canonical spelling of a domain: ASCII lowercase (as the agent renders it).
pub fn normalize_domain(domain: &str) -> String {
    domain.to_ascii_lowercase()
}

/// True when the (normalized) allowed-domain `pattern` lets `domain` through: the same name,
/// or `*.suffix` and a name (or narrower wildcard) strictly under `suffix`.
pub(crate) fn domain_covers(pattern: &str, domain: &str) -> bool {
    if pattern == domain {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => domain
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        None => false,
    }
}

/// An absolute path split into components.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AbsPath {
    Unix(Vec<String>),
    Windows { drive: char, parts: Vec<String> },
}

fn parse_write_path(raw: &str) -> Result<AbsPath, String> {
    if raw.is_empty() {
        return Err("empty path".to_owned());
    }
    let q = quote(raw);
    if raw.trim() != raw {
        return Err(format!("{q}: leading or trailing whitespace"));
    }
    if raw.chars().any(char::is_control) {
        return Err(format!("{q}: control characters are not allowed"));
    }
    if raw.starts_with("\\\\") {
        return Err(format!(
            "{q}: UNC and device paths are not supported; use a drive path like C:\\dir"
        ));
    }
    let mut chars = raw.chars();
    let drive = match (chars.next(), chars.next()) {
        (Some(letter), Some(':')) if letter.is_ascii_alphabetic() => Some(letter),
        _ => None,
    };
    let (drive, body) = match drive {
        Some(letter) => {
            // The first two characters are ASCII, so byte 2 is a char boundary.
            let body = raw.get(2..).unwrap_or_default();
            if !body.starts_with(['\\', '/']) {
                return Err(format!(
                    "{q} is drive-relative; give an absolute path like {}:\\dir",
                    letter.to_ascii_uppercase()
                ));
            }
            (Some(letter.to_ascii_uppercase()), body)
        }
        None if raw.starts_with('/') => (None, raw),
        None if raw.starts_with('~') => {
            return Err(format!(
                "{q} is relative to a home directory; give an absolute path (/dir or C:\\dir)"
            ));
        }
        None => {
            return Err(format!(
                "{q} is relative; give an absolute path (/dir or C:\\dir)"
            ));
        }
    };

    let windows = drive.is_some();
    let separators: &[char] = if windows { &['/', '\\'] } else { &['/'] };
    let mut parts = Vec::new();
    for part in body.split(separators).filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(format!("{q}: . and .. components are not allowed"));
        }
        if part.contains(['*', '?', '[', ']']) {
            return Err(format!(
                "{q}: glob characters (* ? [ ]) are not supported; \
                 give the directory (everything under it is blocked)"
            ));
        }
        if !windows && part.contains('\\') {
            return Err(format!("{q}: backslashes are not allowed in a Unix path"));
        }
        if windows && part.contains(['<', '>', ':', '"', '|']) {
            return Err(format!(
                "{q}: characters < > : \" | are not valid in a Windows path"
            ));
        }
        parts.push(part.to_owned());
    }
    Ok(match drive {
        Some(drive) => AbsPath::Windows { drive, parts },
        None => AbsPath::Unix(parts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a rule is checked with.
    #[derive(Clone, Copy, Debug)]
    enum Rule {
        Tool,
        Path,
        Skill,
        Server,
        Domain,
    }

    fn check(rule: Rule, value: &str) -> Result<(), String> {
        match rule {
            Rule::Tool => validate_tool_name(value),
            Rule::Path => validate_write_path(value),
            Rule::Skill => validate_skill_name(value),
            Rule::Server => validate_mcp_server_name(value),
            Rule::Domain => validate_domain(value),
        }
    }

    /// `(rule, value, None)` is accepted; `(rule, value, Some(text))` is refused with a message
    /// containing `text`. Every value of the agent's own validator tests is here, with the
    /// same verdict; the comment says which rule the row documents.
    const TABLE: &[(Rule, &str, Option<&str>)] = &[
        // --- blocked_tools: the built-in tools, case-sensitive ---
        (Rule::Tool, "Agent", None),
        (Rule::Tool, "Bash", None),
        (Rule::Tool, "Edit", None),
        (Rule::Tool, "Glob", None),
        (Rule::Tool, "Grep", None),
        (Rule::Tool, "LSP", None),
        (Rule::Tool, "NotebookEdit", None),
        (Rule::Tool, "PowerShell", None),
        (Rule::Tool, "Read", None),
        (Rule::Tool, "Skill", None),
        (Rule::Tool, "Task", None), // alias of Agent
        (Rule::Tool, "WebFetch", None),
        (Rule::Tool, "WebSearch", None),
        (Rule::Tool, "Write", None), // a bare Write deny works at tool level
        (Rule::Tool, "", Some("empty tool name")),
        (Rule::Tool, "bash", Some("did you mean \"Bash\"")),
        (Rule::Tool, "webfetch", Some("did you mean \"WebFetch\"")),
        (
            Rule::Tool,
            "Bsh",
            Some("unknown tool \"Bsh\" (did you mean \"Bash\"? known: Agent, Bash,"),
        ),
        (Rule::Tool, "Shell", Some("unknown tool \"Shell\"")),
        (Rule::Tool, "MultiEdit", Some("unknown tool")), // Edit rules cover it
        (Rule::Tool, " Bash", Some("unknown tool")),
        // no specifiers; path rules on write tools are never consulted by Claude Code
        (Rule::Tool, "Bash(rm *)", Some("without a (specifier)")),
        (
            Rule::Tool,
            "WebFetch(domain:x.com)",
            Some("without a (specifier)"),
        ),
        (
            Rule::Tool,
            "Write(/etc/**)",
            Some("list the path in blocked_write_paths"),
        ),
        (
            Rule::Tool,
            "NotebookEdit(/x)",
            Some("never consults NotebookEdit(path)"),
        ),
        (
            Rule::Tool,
            "MultiEdit(/x)",
            Some("never consults MultiEdit(path)"),
        ),
        // --- blocked_tools: MCP patterns ---
        (Rule::Tool, "mcp__*", None),
        (Rule::Tool, "mcp__github__*", None),
        (Rule::Tool, "mcp__github__create_issue", None),
        (Rule::Tool, "mcp__my-server__x", None),
        (Rule::Tool, "mcp__a__b__c", None), // the first __ after the server splits
        (Rule::Tool, "mcp__", Some("write mcp__<server>__*")),
        (Rule::Tool, "mcp__github", Some("write mcp__<server>__*")),
        (Rule::Tool, "mcp____x", Some("empty MCP server name")),
        (Rule::Tool, "mcp__a__", Some("MCP tool part")),
        (Rule::Tool, "mcp__a b__*", Some("may only contain")),
        (Rule::Tool, "mcp__a__b c", Some("MCP tool part")),
        (Rule::Tool, "mcp__a__b*", Some("MCP tool part")),
        (
            Rule::Tool,
            "mcp___a__*",
            Some("must not contain __ or start"),
        ),
        (Rule::Tool, "mcp__a___*", Some("MCP tool part")), // tool part "_*"
        (Rule::Tool, "mcp__a___x", None),                  // tool part "_x"
        (Rule::Tool, "MCP__*", Some("unknown tool")),
        // --- blocked_write_paths: absolute Unix paths ---
        (Rule::Path, "/", None),
        (Rule::Path, "/etc", None),
        (Rule::Path, "/etc/", None),
        (Rule::Path, "//etc//x", None),
        (Rule::Path, "/home/a b/(x)", None),
        (Rule::Path, "/home/é", None),
        (Rule::Path, "", Some("empty path")),
        (
            Rule::Path,
            "etc",
            Some("\"etc\" is relative; give an absolute path"),
        ),
        (
            Rule::Path,
            "src/x",
            Some("\"src/x\" is relative; give an absolute path"),
        ),
        (Rule::Path, "./x", Some("is relative")),
        (Rule::Path, "~/x", Some("relative to a home directory")),
        (Rule::Path, "/a/../b", Some(". and .. components")),
        (Rule::Path, "/a/./b", Some(". and .. components")),
        (Rule::Path, "/a/..", Some(". and .. components")),
        (Rule::Path, "/a/*", Some("glob characters")),
        (Rule::Path, "/a/b?", Some("glob characters")),
        (Rule::Path, "/a[1]", Some("glob characters")),
        (Rule::Path, "/a\\b", Some("backslashes are not allowed")),
        (Rule::Path, " /a", Some("leading or trailing whitespace")),
        (Rule::Path, "/a ", Some("leading or trailing whitespace")),
        (Rule::Path, "/a\nb", Some("control characters")),
        // --- blocked_write_paths: absolute Windows drive paths ---
        (Rule::Path, "C:\\", None),
        (Rule::Path, "C:\\Users\\x", None),
        (Rule::Path, "c:/Program Files (x86)/App", None),
        (Rule::Path, "D:/mixed\\seps", None),
        (Rule::Path, "C:", Some("drive-relative")),
        (Rule::Path, "C:x", Some("drive-relative")),
        (
            Rule::Path,
            "\\\\server\\share",
            Some("UNC and device paths"),
        ),
        (Rule::Path, "\\\\?\\C:\\x", Some("UNC and device paths")),
        (Rule::Path, "\\x", Some("is relative")),
        (Rule::Path, "C:\\a|b", Some("not valid in a Windows path")),
        (Rule::Path, "C:\\a:b", Some("not valid in a Windows path")),
        (Rule::Path, "C:\\a\\..\\b", Some(". and .. components")),
        (Rule::Path, "1:\\x", Some("is relative")),
        // --- allowed_skills ---
        (Rule::Skill, "pdf", None),
        (Rule::Skill, "my-plugin:review", None),
        (Rule::Skill, "a_b.c", None),
        (Rule::Skill, "", Some("empty skill name")),
        (Rule::Skill, "a b", Some("may only contain")),
        (Rule::Skill, "x*", Some("may only contain")),
        (Rule::Skill, "a(b)", Some("may only contain")),
        (Rule::Skill, "é", Some("may only contain")),
        // --- blocked_mcp_servers ---
        (Rule::Server, "github", None),
        (Rule::Server, "my_server", None),
        (Rule::Server, "a-b", None),
        (Rule::Server, "", Some("empty MCP server name")),
        (Rule::Server, "a__b", Some("must not contain __")),
        (
            Rule::Server,
            "_a",
            Some("must not contain __ or start or end with _"),
        ),
        (Rule::Server, "a_", Some("start or end with _")),
        (Rule::Server, "a.b", Some("may only contain")),
        (Rule::Server, "a b", Some("may only contain")),
        // --- allowed_web_domains ---
        (Rule::Domain, "docs.rs", None),
        (Rule::Domain, "*.example.com", None),
        (Rule::Domain, "LOCALHOST", None),
        (Rule::Domain, "a-b.c0", None),
        (Rule::Domain, "", Some("not a domain name")),
        (Rule::Domain, "https://x.com", Some("without a scheme")),
        (Rule::Domain, "x.com/a", Some("without a path")),
        (Rule::Domain, "x.com:443", Some("without a port")),
        (Rule::Domain, "*.", Some("not a domain name")),
        (Rule::Domain, "a..b", Some("not a domain name")),
        (Rule::Domain, "-a.com", Some("not a domain name")),
        (Rule::Domain, "a-.com", Some("not a domain name")),
        (Rule::Domain, "a*.com", Some("not a domain name")),
        (Rule::Domain, "*", Some("not a domain name")),
        (Rule::Domain, "*.*.com", Some("not a domain name")),
        (Rule::Domain, "a_b.com", Some("not a domain name")),
    ];

    #[test]
    fn rule_table() {
        for (rule, value, expected) in TABLE {
            let got = check(*rule, value);
            match expected {
                None => assert_eq!(got, Ok(()), "{rule:?} {value:?} should be accepted"),
                Some(text) => match got {
                    Ok(()) => panic!("{rule:?} {value:?} should be refused"),
                    Err(message) => assert!(
                        message.contains(text),
                        "{rule:?} {value:?}: {message:?} does not contain {text:?}"
                    ),
                },
            }
        }
    }

    #[test]
    fn length_limits() {
        let name = "a".repeat(128);
        assert_eq!(validate_skill_name(&name), Ok(()));
        assert_eq!(validate_mcp_server_name(&name), Ok(()));
        let long = "a".repeat(129);
        assert!(validate_skill_name(&long)
            .unwrap_err()
            .contains("longer than 128"));
        assert!(validate_mcp_server_name(&long)
            .unwrap_err()
            .contains("longer than 128"));

        let label = "a".repeat(63);
        assert_eq!(validate_domain(&format!("{label}.com")), Ok(()));
        assert!(validate_domain(&format!("a{label}.com")).is_err());
        // 4 labels of 63 plus 3 dots = 255 > 253.
        let host = [label.as_str(); 4].join(".");
        assert!(validate_domain(&host).is_err());
        let host = format!("{}.{}", [label.as_str(); 3].join("."), "a".repeat(61));
        assert_eq!(host.len(), 253);
        assert_eq!(validate_domain(&host), Ok(()));
        assert_eq!(validate_domain(&format!("*.{host}")), Ok(()));
    }

    #[test]
    fn unknown_tool_lists_the_known_ones() {
        let message = validate_tool_name("Shell").unwrap_err();
        for tool in KNOWN_TOOLS {
            assert!(message.contains(tool), "{message}");
        }
        assert!(message.contains("mcp__<server>__*"), "{message}");
    }

    #[test]
    fn paths_normalize_like_the_agent_sandbox_rule() {
        for (raw, canonical) in [
            ("/", "/"),
            ("/etc/", "/etc"),
            ("//etc//x", "/etc/x"),
            ("C:\\", "C:\\"),
            ("c:/Users/x/", "C:\\Users\\x"),
            ("D:/mixed\\seps", "D:\\mixed\\seps"),
            ("relative", "relative"), // invalid: unchanged
        ] {
            assert_eq!(normalize_write_path(raw), canonical, "{raw}");
            // Idempotent, and the canonical form is itself valid when the input was.
            assert_eq!(normalize_write_path(canonical), canonical);
            assert_eq!(
                validate_write_path(canonical).is_ok(),
                validate_write_path(raw).is_ok()
            );
        }
        assert_eq!(normalize_domain("Docs.RS"), "docs.rs");
    }

    #[test]
    fn domain_coverage() {
        assert!(domain_covers("docs.rs", "docs.rs"));
        assert!(domain_covers("*.example.com", "a.example.com"));
        assert!(domain_covers("*.example.com", "a.b.example.com"));
        assert!(domain_covers("*.example.com", "*.b.example.com"));
        assert!(domain_covers("*.example.com", "*.example.com"));
        assert!(!domain_covers("*.example.com", "example.com"));
        assert!(!domain_covers("*.example.com", "badexample.com"));
        assert!(!domain_covers("*.example.com", ".example.com"));
        assert!(!domain_covers("a.example.com", "*.example.com"));
        assert!(!domain_covers("*.b.example.com", "*.example.com"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("C:\\dir"), "\"C:\\dir\"");
        assert_eq!(quote("a\nb\\c"), "\"a\\nb\\\\c\"");
        assert_eq!(quote("say \"x\""), "\"say \\\"x\\\"\"");
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("bsh", "bash"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
