//! Permission rules (`permissions.deny`, `ask`, `allow`): `Tool`, `Tool(specifier)`, MCP
//! patterns and `*`, checked against Claude Code's documented rule syntax so that no entry
//! is silently dropped on the laptop.

use super::{domain, edit_distance, plain_text, quote};

/// Claude Code's built-in tools (v2.1.332; `Task` is the old name of `Agent`). A rule naming
/// any other tool is refused: Claude Code would ignore it, and a deny that does nothing is a
/// restriction that only looks enforced.
pub const KNOWN_TOOLS: &[&str] = &[
    "Agent",
    "Artifact",
    "AskUserQuestion",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "Edit",
    "EndConversation",
    "EnterPlanMode",
    "EnterWorktree",
    "ExitPlanMode",
    "ExitWorktree",
    "Glob",
    "Grep",
    "LSP",
    "ListAgents",
    "Monitor",
    "NotebookEdit",
    "PowerShell",
    "Read",
    "RemoteTrigger",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "SendUserFile",
    "Skill",
    "Task",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "TaskUpdate",
    "TodoWrite",
    "ToolSearch",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
];

/// The rule that matches every tool (deny and ask lists only).
pub const EVERY_TOOL: &str = "*";

/// The rule that matches every MCP tool.
pub const EVERY_MCP_TOOL: &str = "mcp__*";

const MAX_RULE_LEN: usize = 1024;

/// A rule in a deny or ask list (`*` allowed).
pub fn restricting_rule(raw: &str) -> Result<String, String> {
    rule(raw, true)
}

/// A rule in an allow list (a grant: `*` is refused).
pub fn granting_rule(raw: &str) -> Result<String, String> {
    if raw == EVERY_TOOL {
        return Err("\"*\" would pre-approve every tool; name the tools to allow".to_owned());
    }
    rule(raw, false)
}

fn rule(raw: &str, star_ok: bool) -> Result<String, String> {
    plain_text("rule", raw, MAX_RULE_LEN)?;
    if raw == EVERY_TOOL && star_ok {
        return Ok(raw.to_owned());
    }
    if let Some(rest) = raw.strip_prefix("mcp__") {
        return mcp_pattern(raw, rest).map(|()| raw.to_owned());
    }
    let (tool, specifier) = match raw.split_once('(') {
        None => (raw, None),
        Some((tool, rest)) => match rest.strip_suffix(')') {
            Some(spec) => (tool, Some(spec)),
            None => return Err(format!("{}: a specifier ends with )", quote(raw))),
        },
    };
    known_tool(tool).map_err(|e| match specifier {
        Some(_) => format!("{}: {e}", quote(raw)),
        None => e,
    })?;
    let Some(spec) = specifier else {
        return Ok(raw.to_owned());
    };
    if spec.is_empty() {
        return Err(format!(
            "{}: empty specifier; write {tool} alone for the whole tool",
            quote(raw)
        ));
    }
    specifier_of(tool, spec).map_err(|e| format!("{}: {e}", quote(raw)))?;
    Ok(raw.to_owned())
}

/// A tool of [`KNOWN_TOOLS`], with a hint for a near miss.
pub fn known_tool(name: &str) -> Result<(), String> {
    if KNOWN_TOOLS.contains(&name) {
        return Ok(());
    }
    if let Some(known) = KNOWN_TOOLS.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "unknown tool {} (did you mean {}? tool names are case-sensitive)",
            quote(name),
            quote(known)
        ));
    }
    let near = KNOWN_TOOLS
        .iter()
        .map(|k| (edit_distance(k, name), *k))
        .filter(|(d, _)| *d <= 2)
        .min();
    let hint = near.map_or(String::new(), |(_, k)| {
        format!("did you mean {}? ", quote(k))
    });
    Err(format!(
        "unknown tool {} ({hint}known: {}, mcp__<server>__*, mcp__*, *)",
        quote(name),
        KNOWN_TOOLS.join(", ")
    ))
}

fn specifier_of(tool: &str, spec: &str) -> Result<(), String> {
    match tool {
        "Bash" | "PowerShell" => Ok(()),
        "Read" | "Edit" => path_pattern(spec),
        "WebFetch" => match spec.strip_prefix("domain:") {
            Some(d) => domain::domain(d).map(|_| ()),
            None => Err("WebFetch rules are written WebFetch(domain:<host>)".to_owned()),
        },
        "Agent" | "Task" => agent_name(spec),
        "Skill" => {
            let name = spec.strip_suffix(" *").unwrap_or(spec);
            super::names::skill(name).map(|_| ())
        }
        "Write" | "NotebookEdit" => Err(format!(
            "Claude Code never consults {tool}(path) rules; write Edit(path), or list the \
             path in files.deny_write"
        )),
        _ => Err(format!("{tool} takes no specifier; write {tool} alone")),
    }
}

/// A Read/Edit path pattern in the permission convention.
fn path_pattern(spec: &str) -> Result<(), String> {
    if spec.starts_with('/') && !spec.starts_with("//") {
        return Err(format!(
            "{} is relative to the settings file in managed settings; write //{} for an \
             absolute path",
            quote(spec),
            spec.trim_start_matches('/')
        ));
    }
    if spec.contains('\\') {
        return Err(format!(
            "{}: write Windows paths with / (C:\\x is //c/x)",
            quote(spec)
        ));
    }
    Ok(())
}

fn agent_name(name: &str) -> Result<(), String> {
    if name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
    {
        Ok(())
    } else {
        Err(format!(
            "agent name {} may only contain letters, digits, -, _, : and .",
            quote(name)
        ))
    }
}

fn mcp_pattern(name: &str, rest: &str) -> Result<(), String> {
    let q = quote(name);
    if rest == "*" {
        return Ok(());
    }
    let Some((server, tool)) = rest.split_once("__") else {
        return Err(format!(
            "{q}: write mcp__<server>__* for every tool of a server, or mcp__* for all"
        ));
    };
    super::mcp::tool_server_name(server).map_err(|e| format!("{q}: {e}"))?;
    let tool_ok = tool == "*"
        || (!tool.is_empty()
            && tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    if tool_ok {
        Ok(())
    } else {
        Err(format!(
            "{q}: the MCP tool part must be * or letters, digits, _ and -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for ok in [
            "*",
            "Bash",
            "Bash(curl *)",
            "Bash(git push *)",
            "Read(//etc/shadow)",
            "Read(~/.ssh/**)",
            "Read(**/.env)",
            "Edit(//srv/secret/**)",
            "Edit(src/**)",
            "WebFetch",
            "WebFetch(domain:pastebin.com)",
            "WebFetch(domain:*.example.com)",
            "Agent(Explore)",
            "Task",
            "Skill(deploy *)",
            "Skill(pdf)",
            "mcp__*",
            "mcp__github__*",
            "mcp__github__create_issue",
            "RemoteTrigger",
            "Workflow",
        ] {
            assert_eq!(restricting_rule(ok).as_deref(), Ok(ok), "{ok}");
        }
    }

    #[test]
    fn refused() {
        for (bad, why) in [
            ("", "empty rule"),
            ("bash", "did you mean \"Bash\""),
            ("Bsh", "did you mean \"Bash\""),
            ("Shell", "unknown tool"),
            ("MultiEdit", "unknown tool"),
            ("Bash(", "ends with )"),
            ("Bash()", "empty specifier"),
            ("Write(/etc/**)", "never consults Write(path)"),
            ("NotebookEdit(//x)", "never consults"),
            ("Read(/etc/x)", "relative to the settings file"),
            ("Read(C:\\x)", "write Windows paths with /"),
            ("WebFetch(pastebin.com)", "domain:<host>"),
            ("WebFetch(domain:https://x)", "without a scheme"),
            ("Glob(*.rs)", "takes no specifier"),
            ("Agent(a b)", "may only contain"),
            ("mcp__", "mcp__<server>__*"),
            ("mcp__a b__*", "may only contain"),
            ("mcp__a__b c", "MCP tool part"),
            (" Bash", "whitespace"),
        ] {
            let e = restricting_rule(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(granting_rule("*").unwrap_err().contains("every tool"));
        assert!(granting_rule("Bash(npm test)").is_ok());
    }
}
