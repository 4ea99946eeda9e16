//! The policy engine: what an administrator sets (organisation defaults and per-group
//! overrides), how a policy file is parsed and validated, how a user's effective policy is
//! computed from the defaults and the overrides of their groups, where each rule of it comes
//! from, and which roles a user has.
//!
//! **Invariant: this module is pure.** It does no I/O of any kind: no files, no database, no
//! network, no clock, no environment, no randomness. Callers (the CLI, the store, the policy
//! stream) read files and rows and pass text and values in; every function here is a
//! deterministic function of its arguments, so it is tested without fixtures.
//!
//! # Policy files
//!
//! JSON or TOML ([`PolicyFormat::from_path_name`] picks by extension), with these fields, all
//! optional (the same snake_case shape the agent's `Policy` uses):
//!
//! ```json
//! {
//!   "blocked_tools": ["Bash", "mcp__github__*"],
//!   "security_level": "strict",
//!   "blocked_write_paths": ["/etc", "C:\\Users\\Public"],
//!   "allowed_skills": ["pdf", "docx"],
//!   "blocked_mcp_servers": ["filesystem"],
//!   "allowed_web_domains": ["docs.rs", "*.example.com"]
//! }
//! ```
//!
//! [`parse_policy`] reports every problem at once, each with its field and index. The entry
//! rules ([`rules`]) mirror the agent's validators exactly, so a policy accepted here is never
//! NACKed by an agent.
//!
//! # Effective policy
//!
//! [`effective`] overlays the organisation defaults with every override of the user's groups:
//!
//! | field | merge |
//! |---|---|
//! | `blocked_tools`, `blocked_write_paths`, `blocked_mcp_servers` | union |
//! | `security_level` | the strictest set anywhere; `minimal` when none is set |
//! | `allowed_skills` | intersection of every list that is set (absent = no restriction) |
//! | `allowed_web_domains` | intersection of every list that is set; a `*.suffix` entry admits the names under it |
//!
//! A user in no group gets the defaults. Entries are normalized (paths to one spelling,
//! domains lowercased) so that equal rules written differently merge and hash as one.
//! [`explain`] gives the source of each rule; [`EffectivePolicy::canonical_json`] is the stable
//! text the caller hashes to decide whether a user's policy changed.
//!
//! # Adding a field
//!
//! Add it to [`PolicyOverride`] and [`EffectivePolicy`], to `parse::FIELDS` and the parser's
//! match, to the merge in [`effective`] and [`explain`], and to the agent. A field at its
//! default value is left out of the canonical JSON, so adding one does not change the hash of
//! any existing policy (no needless re-push to every agent).

mod explain;
mod parse;
pub mod roles;
pub mod rules;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use explain::{
    explain, AllowListExplanation, Explanation, LevelExplanation, Restriction, RuleSources, Source,
};
pub use parse::{
    parse_policy, ParseLevelError, PolicyError, PolicyErrors, PolicyFormat, UnsupportedFormat,
    FIELDS,
};
pub use roles::{effective_roles, ParseRoleError, Role};

/// How much of Claude Code's own hardening a policy switches on, weakest first (the agent
/// renders each level into a documented set of settings keys).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SecurityLevel {
    /// Only the explicit rules of the policy.
    #[default]
    Minimal,
    /// `--dangerously-skip-permissions` is rejected.
    Moderate,
    /// Moderate, and only managed permission rules count.
    Strict,
    /// Strict, plus a required sandbox, managed hooks and MCP servers only, locked
    /// marketplaces, no sideload flags.
    Paranoid,
}

impl SecurityLevel {
    /// Every level, weakest first.
    pub const ALL: [SecurityLevel; 4] = [
        SecurityLevel::Minimal,
        SecurityLevel::Moderate,
        SecurityLevel::Strict,
        SecurityLevel::Paranoid,
    ];

    /// The lowercase name used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityLevel::Minimal => "minimal",
            SecurityLevel::Moderate => "moderate",
            SecurityLevel::Strict => "strict",
            SecurityLevel::Paranoid => "paranoid",
        }
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecurityLevel {
    type Err = ParseLevelError;

    /// Exactly one of the lowercase names, as the agent accepts them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecurityLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| ParseLevelError {
                value: s.to_owned(),
            })
    }
}

/// What an administrator sets, for the organisation defaults or for one group: a policy file
/// once parsed. Every field is optional; an empty list and an absent one are the same for the
/// block lists, but not for the allow-lists (`Some([])` allows nothing, `None` restricts
/// nothing).
///
/// Serialized with serde (the storage format) it has the policy-file shape; empty lists and
/// absent values are left out. Reading refuses unknown fields. Use [`parse_policy`] for
/// operator input: it reports every problem at once and checks the entry rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyOverride {
    /// Tool names denied outright (`Bash`, `WebFetch`, `mcp__server__*`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_tools: Vec<String>,
    /// Hardening level; `None` sets none (the strictest level set anywhere wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_level: Option<SecurityLevel>,
    /// Absolute paths (`/a/b`, `C:\a\b`) no tool may write under.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_write_paths: Vec<String>,
    /// `None`: no restriction. `Some(list)`: only these skills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_skills: Option<Vec<String>>,
    /// MCP server names that must not be loaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_mcp_servers: Vec<String>,
    /// `None`: no restriction. `Some(list)`: only these domains (`Some([])`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_web_domains: Option<Vec<String>>,
}

/// A policy file is parsed into the same type as a stored override.
pub type PolicyFile = PolicyOverride;

/// One group of the user and its override.
#[derive(Debug, Clone, Copy)]
pub struct GroupPolicy<'a> {
    /// The group's `displayName`, used by [`explain`].
    pub group: &'a str,
    /// What the administrator set for the group.
    pub policy: &'a PolicyOverride,
}

/// The policy of one user: sorted, de-duplicated, normalized sets and a concrete level.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EffectivePolicy {
    pub blocked_tools: BTreeSet<String>,
    pub security_level: SecurityLevel,
    pub blocked_write_paths: BTreeSet<String>,
    /// `None`: no restriction.
    pub allowed_skills: Option<BTreeSet<String>>,
    pub blocked_mcp_servers: BTreeSet<String>,
    /// `None`: no restriction.
    pub allowed_web_domains: Option<BTreeSet<String>>,
}

impl EffectivePolicy {
    /// The stable text the caller hashes (SHA-256) to tell whether a user's policy changed.
    ///
    /// Compact JSON (no whitespace), keys in byte order, every array sorted and
    /// de-duplicated, the level as its lowercase name; a field at its default value (an
    /// empty block list, no allow-list restriction, `minimal`) is left out, and `Some([])`
    /// is kept as `[]`. The policy with no rule at all is `{}`. It deserializes into the
    /// agent's `Policy` as is.
    pub fn canonical_json(&self) -> String {
        // Keys are inserted in byte order, so the text is the same whether or not
        // serde_json's `preserve_order` is on.
        let mut map = Map::new();
        if let Some(skills) = &self.allowed_skills {
            map.insert("allowed_skills".to_owned(), strings(skills));
        }
        if let Some(domains) = &self.allowed_web_domains {
            map.insert("allowed_web_domains".to_owned(), strings(domains));
        }
        if !self.blocked_mcp_servers.is_empty() {
            map.insert(
                "blocked_mcp_servers".to_owned(),
                strings(&self.blocked_mcp_servers),
            );
        }
        if !self.blocked_tools.is_empty() {
            map.insert("blocked_tools".to_owned(), strings(&self.blocked_tools));
        }
        if !self.blocked_write_paths.is_empty() {
            map.insert(
                "blocked_write_paths".to_owned(),
                strings(&self.blocked_write_paths),
            );
        }
        if self.security_level != SecurityLevel::Minimal {
            map.insert(
                "security_level".to_owned(),
                json!(self.security_level.as_str()),
            );
        }
        Value::Object(map).to_string()
    }

    /// Every field, as a JSON value (`null` for no restriction), in declaration order.
    pub fn to_value(&self) -> Value {
        json!({
            "blocked_tools": strings(&self.blocked_tools),
            "security_level": self.security_level.as_str(),
            "blocked_write_paths": strings(&self.blocked_write_paths),
            "allowed_skills": self.allowed_skills.as_ref().map(strings),
            "blocked_mcp_servers": strings(&self.blocked_mcp_servers),
            "allowed_web_domains": self.allowed_web_domains.as_ref().map(strings),
        })
    }

    /// [`EffectivePolicy::to_value`], pretty-printed (for `policy show --json`).
    pub fn to_json(&self) -> String {
        format!("{:#}", self.to_value())
    }
}

impl fmt::Display for EffectivePolicy {
    /// One line per field, as in [`Explanation`]'s report without the sources.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "blocked_tools: {}", list(&self.blocked_tools))?;
        writeln!(f, "security_level: {}", self.security_level)?;
        writeln!(
            f,
            "blocked_write_paths: {}",
            list(&self.blocked_write_paths)
        )?;
        writeln!(
            f,
            "allowed_skills: {}",
            allow_list(self.allowed_skills.as_ref())
        )?;
        writeln!(
            f,
            "blocked_mcp_servers: {}",
            list(&self.blocked_mcp_servers)
        )?;
        writeln!(
            f,
            "allowed_web_domains: {}",
            allow_list(self.allowed_web_domains.as_ref())
        )
    }
}

fn strings(set: &BTreeSet<String>) -> Value {
    Value::Array(set.iter().cloned().map(Value::String).collect())
}

/// `[a, b]`.
fn bracketed(set: &BTreeSet<String>) -> String {
    let items: Vec<&str> = set.iter().map(String::as_str).collect();
    format!("[{}]", items.join(", "))
}

fn list(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "(none)".to_owned()
    } else {
        bracketed(set)
    }
}

fn allow_list(set: Option<&BTreeSet<String>>) -> String {
    match set {
        None => "no restriction".to_owned(),
        Some(set) if set.is_empty() => "[] (none allowed)".to_owned(),
        Some(set) => bracketed(set),
    }
}

/// The entry normalizations, per field (identity where spelling matters).
pub(crate) fn normalize(field: &str, entry: &str) -> String {
    match field {
        "blocked_write_paths" => rules::normalize_write_path(entry),
        "allowed_web_domains" => rules::normalize_domain(entry),
        _ => entry.to_owned(),
    }
}

/// The entries of `lists` that every list admits: for skills an exact match, for domains a
/// match or a `*.suffix` entry above it. `None` when no list is given (no restriction).
pub(crate) fn intersect(field: &str, lists: &[&BTreeSet<String>]) -> Option<BTreeSet<String>> {
    let (first, rest) = lists.split_first()?;
    let admits = |list: &BTreeSet<String>, entry: &str| {
        if field == "allowed_web_domains" {
            list.iter()
                .any(|pattern| rules::domain_covers(pattern, entry))
        } else {
            list.contains(entry)
        }
    };
    let mut candidates: BTreeSet<&String> = first.iter().collect();
    for list in rest {
        candidates.extend(list.iter());
    }
    Some(
        candidates
            .into_iter()
            .filter(|entry| lists.iter().all(|list| admits(list, entry)))
            .cloned()
            .collect(),
    )
}

fn normalized_set(field: &str, entries: &[String]) -> BTreeSet<String> {
    entries.iter().map(|e| normalize(field, e)).collect()
}

/// The user's effective policy: the organisation `defaults` overlaid with the override of
/// every group in `groups` (see the module documentation for the merge of each field). The
/// order of `groups` does not matter. Entries are assumed valid ([`parse_policy`] or
/// [`PolicyOverride::validate`]); an invalid one is passed through unchanged, so that an agent
/// refuses the policy rather than the control plane silently dropping a restriction.
pub fn effective(defaults: &PolicyOverride, groups: &[GroupPolicy<'_>]) -> EffectivePolicy {
    let sources: Vec<&PolicyOverride> = std::iter::once(defaults)
        .chain(groups.iter().map(|g| g.policy))
        .collect();
    let union = |field: &str, get: fn(&PolicyOverride) -> &Vec<String>| -> BTreeSet<String> {
        sources
            .iter()
            .flat_map(|p| get(p).iter().map(|e| normalize(field, e)))
            .collect()
    };
    let intersection = |field: &str,
                        get: fn(&PolicyOverride) -> Option<&Vec<String>>|
     -> Option<BTreeSet<String>> {
        let sets: Vec<BTreeSet<String>> = sources
            .iter()
            .filter_map(|p| get(p))
            .map(|l| normalized_set(field, l))
            .collect();
        let refs: Vec<&BTreeSet<String>> = sets.iter().collect();
        intersect(field, &refs)
    };
    EffectivePolicy {
        blocked_tools: union("blocked_tools", |p| &p.blocked_tools),
        security_level: sources
            .iter()
            .filter_map(|p| p.security_level)
            .max()
            .unwrap_or_default(),
        blocked_write_paths: union("blocked_write_paths", |p| &p.blocked_write_paths),
        allowed_skills: intersection("allowed_skills", |p| p.allowed_skills.as_ref()),
        blocked_mcp_servers: union("blocked_mcp_servers", |p| &p.blocked_mcp_servers),
        allowed_web_domains: intersection("allowed_web_domains", |p| {
            p.allowed_web_domains.as_ref()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn group<'a>(group: &'a str, policy: &'a PolicyOverride) -> GroupPolicy<'a> {
        GroupPolicy { group, policy }
    }

    #[test]
    fn levels_are_ordered_and_parse() {
        assert!(SecurityLevel::Minimal < SecurityLevel::Moderate);
        assert!(SecurityLevel::Moderate < SecurityLevel::Strict);
        assert!(SecurityLevel::Strict < SecurityLevel::Paranoid);
        for level in SecurityLevel::ALL {
            assert_eq!(level.as_str().parse::<SecurityLevel>(), Ok(level));
            assert_eq!(
                serde_json::to_string(&level).unwrap(),
                format!("\"{level}\"")
            );
            let back: SecurityLevel = serde_json::from_str(&format!("\"{level}\"")).unwrap();
            assert_eq!(back, level);
        }
        assert_eq!(
            "high".parse::<SecurityLevel>().unwrap_err().to_string(),
            "unknown level \"high\" (expected minimal, moderate, strict, paranoid)"
        );
        assert_eq!(
            "PARANOID".parse::<SecurityLevel>().unwrap_err().to_string(),
            "unknown level \"PARANOID\" (expected minimal, moderate, strict, paranoid; levels are lowercase)"
        );
        assert!(serde_json::from_str::<SecurityLevel>("\"Strict\"").is_err());
        assert_eq!(SecurityLevel::default(), SecurityLevel::Minimal);
    }

    #[test]
    fn no_group_gets_the_defaults() {
        let defaults = PolicyOverride {
            blocked_tools: strs(&["WebFetch", "Bash", "Bash"]),
            security_level: Some(SecurityLevel::Moderate),
            blocked_write_paths: strs(&["/etc/"]),
            allowed_skills: Some(strs(&["pdf"])),
            blocked_mcp_servers: strs(&["github"]),
            allowed_web_domains: Some(strs(&["Docs.RS"])),
        };
        assert_eq!(
            effective(&defaults, &[]),
            EffectivePolicy {
                blocked_tools: set(&["Bash", "WebFetch"]),
                security_level: SecurityLevel::Moderate,
                blocked_write_paths: set(&["/etc"]),
                allowed_skills: Some(set(&["pdf"])),
                blocked_mcp_servers: set(&["github"]),
                allowed_web_domains: Some(set(&["docs.rs"])),
            }
        );
        assert_eq!(
            effective(&PolicyOverride::default(), &[]),
            EffectivePolicy::default()
        );
    }

    #[test]
    fn block_lists_are_unions() {
        let defaults = PolicyOverride {
            blocked_tools: strs(&["Bash"]),
            blocked_write_paths: strs(&["/etc"]),
            blocked_mcp_servers: strs(&["github"]),
            ..PolicyOverride::default()
        };
        let a = PolicyOverride {
            blocked_tools: strs(&["WebFetch", "Bash"]),
            blocked_write_paths: strs(&["/etc/", "c:/Users/x"]),
            ..PolicyOverride::default()
        };
        let b = PolicyOverride {
            blocked_tools: strs(&["mcp__*"]),
            blocked_mcp_servers: strs(&["jira", "github"]),
            ..PolicyOverride::default()
        };
        let p = effective(&defaults, &[group("A", &a), group("B", &b)]);
        assert_eq!(p.blocked_tools, set(&["Bash", "WebFetch", "mcp__*"]));
        assert_eq!(p.blocked_write_paths, set(&["/etc", "C:\\Users\\x"]));
        assert_eq!(p.blocked_mcp_servers, set(&["github", "jira"]));
        // No one set an allow-list: no restriction.
        assert_eq!(p.allowed_skills, None);
        assert_eq!(p.allowed_web_domains, None);
    }

    #[test]
    fn level_is_the_strictest() {
        let level = |l: Option<SecurityLevel>| PolicyOverride {
            security_level: l,
            ..PolicyOverride::default()
        };
        let none = level(None);
        let minimal = level(Some(SecurityLevel::Minimal));
        let strict = level(Some(SecurityLevel::Strict));
        let paranoid = level(Some(SecurityLevel::Paranoid));
        let moderate = level(Some(SecurityLevel::Moderate));

        assert_eq!(effective(&none, &[]).security_level, SecurityLevel::Minimal);
        assert_eq!(
            effective(&none, &[group("A", &none)]).security_level,
            SecurityLevel::Minimal
        );
        // A group cannot weaken the default.
        assert_eq!(
            effective(&strict, &[group("A", &minimal)]).security_level,
            SecurityLevel::Strict
        );
        assert_eq!(
            effective(&moderate, &[group("A", &paranoid), group("B", &minimal)]).security_level,
            SecurityLevel::Paranoid
        );
        assert_eq!(
            effective(&none, &[group("A", &moderate)]).security_level,
            SecurityLevel::Moderate
        );
    }

    #[test]
    fn allow_lists_intersect_and_absent_is_not_empty() {
        let skills = |s: Option<&[&str]>| PolicyOverride {
            allowed_skills: s.map(strs),
            ..PolicyOverride::default()
        };
        let absent = skills(None);
        let empty = skills(Some(&[]));
        let ab = skills(Some(&["a", "b"]));
        let bc = skills(Some(&["b", "c"]));

        let run = |d: &PolicyOverride, gs: &[&PolicyOverride]| {
            let groups: Vec<GroupPolicy<'_>> = gs.iter().map(|p| group("g", p)).collect();
            effective(d, &groups).allowed_skills
        };
        // The example of the brief: [a, b] and [b, c] give [b].
        assert_eq!(run(&absent, &[&ab, &bc]), Some(set(&["b"])));
        // Absent lists do not take part.
        assert_eq!(run(&absent, &[&absent, &ab]), Some(set(&["a", "b"])));
        assert_eq!(run(&ab, &[&absent]), Some(set(&["a", "b"])));
        assert_eq!(run(&absent, &[&absent]), None);
        // An empty list allows nothing, whatever the others say.
        assert_eq!(run(&ab, &[&empty]), Some(set(&[])));
        assert_eq!(run(&empty, &[]), Some(set(&[])));
        // Disjoint lists allow nothing.
        assert_eq!(
            run(&absent, &[&skills(Some(&["a"])), &skills(Some(&["c"]))]),
            Some(set(&[]))
        );
        // Skill names are case-sensitive.
        assert_eq!(
            run(&skills(Some(&["PDF"])), &[&skills(Some(&["pdf"]))]),
            Some(set(&[]))
        );
    }

    #[test]
    fn domain_lists_intersect_with_wildcards() {
        let domains = |d: &[&str]| PolicyOverride {
            allowed_web_domains: Some(strs(d)),
            ..PolicyOverride::default()
        };
        let corp = domains(&["*.Corp.com", "docs.rs"]);
        let git = domains(&["git.corp.com", "DOCS.rs", "crates.io"]);
        let p = effective(&corp, &[group("Dev", &git)]);
        assert_eq!(
            p.allowed_web_domains,
            Some(set(&["docs.rs", "git.corp.com"]))
        );
        // A narrower wildcard survives a broader one; the bare suffix is not under *.suffix.
        let narrow = domains(&["*.eu.corp.com", "corp.com"]);
        let p = effective(&corp, &[group("EU", &narrow)]);
        assert_eq!(p.allowed_web_domains, Some(set(&["*.eu.corp.com"])));
    }

    #[test]
    fn order_of_groups_does_not_matter() {
        let a = PolicyOverride {
            blocked_tools: strs(&["Bash"]),
            allowed_skills: Some(strs(&["x", "y"])),
            security_level: Some(SecurityLevel::Strict),
            ..PolicyOverride::default()
        };
        let b = PolicyOverride {
            blocked_tools: strs(&["Read"]),
            allowed_skills: Some(strs(&["y", "z"])),
            allowed_web_domains: Some(strs(&["*.a.com"])),
            ..PolicyOverride::default()
        };
        let d = PolicyOverride::default();
        let one = effective(&d, &[group("A", &a), group("B", &b)]);
        let two = effective(&d, &[group("B", &b), group("A", &a)]);
        assert_eq!(one, two);
        assert_eq!(one.canonical_json(), two.canonical_json());
    }

    #[test]
    fn canonical_json_is_stable() {
        assert_eq!(EffectivePolicy::default().canonical_json(), "{}");
        let p = EffectivePolicy {
            blocked_tools: set(&["mcp__*", "Bash", "Agent"]),
            security_level: SecurityLevel::Strict,
            blocked_write_paths: set(&["C:\\x", "/etc"]),
            allowed_skills: Some(set(&[])),
            blocked_mcp_servers: set(&["zeta", "alpha"]),
            allowed_web_domains: None,
        };
        assert_eq!(
            p.canonical_json(),
            r#"{"allowed_skills":[],"blocked_mcp_servers":["alpha","zeta"],"blocked_tools":["Agent","Bash","mcp__*"],"blocked_write_paths":["/etc","C:\\x"],"security_level":"strict"}"#
        );
        // The same rules written differently give the same text.
        let d1 = PolicyOverride {
            blocked_tools: strs(&["Bash", "Read", "Bash"]),
            blocked_write_paths: strs(&["/a/", "//b"]),
            allowed_web_domains: Some(strs(&["X.com", "x.com"])),
            security_level: Some(SecurityLevel::Minimal),
            ..PolicyOverride::default()
        };
        let d2 = PolicyOverride {
            blocked_tools: strs(&["Read", "Bash"]),
            blocked_write_paths: strs(&["/b", "/a"]),
            allowed_web_domains: Some(strs(&["x.com"])),
            ..PolicyOverride::default()
        };
        let (c1, c2) = (
            effective(&d1, &[]).canonical_json(),
            effective(&d2, &[]).canonical_json(),
        );
        assert_eq!(c1, c2);
        assert_eq!(
            c1,
            r#"{"allowed_web_domains":["x.com"],"blocked_tools":["Bash","Read"],"blocked_write_paths":["/a","/b"]}"#
        );
        // Every change shows.
        let mut changed = effective(&d2, &[]);
        changed.allowed_web_domains = None;
        assert_ne!(changed.canonical_json(), c2);
        let mut changed = effective(&d2, &[]);
        changed.security_level = SecurityLevel::Moderate;
        assert_ne!(changed.canonical_json(), c2);
        // It reads back (the agent's shape: snake_case, defaults for missing fields).
        let back: EffectivePolicy = serde_json::from_str(&p.canonical_json()).unwrap();
        assert_eq!(back, p);
        let back: EffectivePolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(back, EffectivePolicy::default());
    }

    #[test]
    fn to_json_has_every_field() {
        let v = EffectivePolicy::default().to_value();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for field in FIELDS {
            assert!(keys.contains(field), "{field} missing from {keys:?}");
        }
        assert_eq!(v["security_level"], "minimal");
        assert!(v["allowed_skills"].is_null());
        let text = EffectivePolicy::default().to_json();
        assert!(text.starts_with("{\n  \""), "{text}");
        let back: EffectivePolicy = serde_json::from_str(&text).unwrap();
        assert_eq!(back, EffectivePolicy::default());
    }

    #[test]
    fn display_lists_each_field() {
        let p = EffectivePolicy {
            blocked_tools: set(&["Bash", "Read"]),
            allowed_skills: Some(set(&[])),
            ..EffectivePolicy::default()
        };
        assert_eq!(
            p.to_string(),
            "blocked_tools: [Bash, Read]\n\
             security_level: minimal\n\
             blocked_write_paths: (none)\n\
             allowed_skills: [] (none allowed)\n\
             blocked_mcp_servers: (none)\n\
             allowed_web_domains: no restriction\n"
        );
    }

    #[test]
    fn invalid_entries_pass_through() {
        let d = PolicyOverride {
            blocked_write_paths: strs(&["relative/x"]),
            allowed_web_domains: Some(strs(&["https://X.com"])),
            ..PolicyOverride::default()
        };
        let p = effective(&d, &[]);
        assert_eq!(p.blocked_write_paths, set(&["relative/x"]));
        assert_eq!(p.allowed_web_domains, Some(set(&["https://x.com"])));
    }
}
