//! Where each rule of an effective policy comes from (`policy show --explain`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{json, Value};

use super::rules::quote;
use super::{
    effective, intersect, normalize, normalized_set, strings, EffectivePolicy, GroupPolicy,
    PolicyOverride, SecurityLevel,
};

/// Where a rule was set: the organisation defaults or a group's override.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The organisation defaults.
    Default,
    /// The override of the group with this `displayName`.
    Group(String),
}

impl Source {
    /// `{"kind": "default"}` or `{"kind": "group", "group": "<displayName>"}`.
    pub fn to_value(&self) -> Value {
        match self {
            Source::Default => json!({ "kind": "default" }),
            Source::Group(name) => json!({ "kind": "group", "group": name }),
        }
    }
}

impl fmt::Display for Source {
    /// `default` or `group "Contractors"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Group(name) => write!(f, "group {}", quote(name)),
        }
    }
}

/// One entry of a block list and every source that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSources {
    /// The normalized entry, as in the effective policy.
    pub value: String,
    /// Never empty; defaults first, then groups by name.
    pub sources: BTreeSet<Source>,
}

/// The effective level and the sources that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelExplanation {
    pub level: SecurityLevel,
    /// The sources whose level is the effective one; empty when no source sets a level (the
    /// level is then `minimal`).
    pub sources: BTreeSet<Source>,
}

/// One allow-list as a source set it (normalized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub source: Source,
    pub entries: BTreeSet<String>,
}

/// An allow-list of the effective policy and the restrictions it is the intersection of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowListExplanation {
    /// What the effective policy allows.
    pub allowed: BTreeSet<String>,
    /// Every source that set a list (at least one), defaults first, then groups by name.
    pub restrictions: Vec<Restriction>,
}

/// The effective policy and, for every rule of it, its source(s). `Display` prints a report,
/// one line per rule; [`Explanation::to_json`] gives the same for `--json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The same as [`effective`] gives.
    pub policy: EffectivePolicy,
    pub blocked_tools: Vec<RuleSources>,
    pub security_level: LevelExplanation,
    pub blocked_write_paths: Vec<RuleSources>,
    /// `None`: no source restricts skills.
    pub allowed_skills: Option<AllowListExplanation>,
    pub blocked_mcp_servers: Vec<RuleSources>,
    /// `None`: no source restricts web domains.
    pub allowed_web_domains: Option<AllowListExplanation>,
}

/// The effective policy of a user with the source of each rule (see [`effective`]).
pub fn explain(defaults: &PolicyOverride, groups: &[GroupPolicy<'_>]) -> Explanation {
    let sources: Vec<(Source, &PolicyOverride)> = std::iter::once((Source::Default, defaults))
        .chain(
            groups
                .iter()
                .map(|g| (Source::Group(g.group.to_owned()), g.policy)),
        )
        .collect();

    let union = |field: &str, get: fn(&PolicyOverride) -> &Vec<String>| -> Vec<RuleSources> {
        let mut rules: BTreeMap<String, BTreeSet<Source>> = BTreeMap::new();
        for (source, policy) in &sources {
            for entry in get(policy) {
                rules
                    .entry(normalize(field, entry))
                    .or_default()
                    .insert(source.clone());
            }
        }
        rules
            .into_iter()
            .map(|(value, sources)| RuleSources { value, sources })
            .collect()
    };

    let allow = |field: &str,
                 get: fn(&PolicyOverride) -> Option<&Vec<String>>|
     -> Option<AllowListExplanation> {
        let mut restrictions: Vec<Restriction> = sources
            .iter()
            .filter_map(|(source, policy)| {
                get(policy).map(|list| Restriction {
                    source: source.clone(),
                    entries: normalized_set(field, list),
                })
            })
            .collect();
        restrictions.sort_by(|a, b| a.source.cmp(&b.source));
        let lists: Vec<&BTreeSet<String>> = restrictions.iter().map(|r| &r.entries).collect();
        let allowed = intersect(field, &lists)?;
        Some(AllowListExplanation {
            allowed,
            restrictions,
        })
    };

    let level = sources
        .iter()
        .filter_map(|(_, p)| p.security_level)
        .max()
        .unwrap_or_default();
    let level_sources = sources
        .iter()
        .filter(|(_, p)| p.security_level == Some(level))
        .map(|(s, _)| s.clone())
        .collect();

    Explanation {
        policy: effective(defaults, groups),
        blocked_tools: union("blocked_tools", |p| &p.blocked_tools),
        security_level: LevelExplanation {
            level,
            sources: level_sources,
        },
        blocked_write_paths: union("blocked_write_paths", |p| &p.blocked_write_paths),
        allowed_skills: allow("allowed_skills", |p| p.allowed_skills.as_ref()),
        blocked_mcp_servers: union("blocked_mcp_servers", |p| &p.blocked_mcp_servers),
        allowed_web_domains: allow("allowed_web_domains", |p| p.allowed_web_domains.as_ref()),
    }
}

fn sources_text(sources: &BTreeSet<Source>) -> String {
    let names: Vec<String> = sources.iter().map(Source::to_string).collect();
    names.join(", ")
}

fn bracketed(set: &BTreeSet<String>) -> String {
    let items: Vec<&str> = set.iter().map(String::as_str).collect();
    format!("[{}]", items.join(", "))
}

fn sources_json(sources: &BTreeSet<Source>) -> Value {
    Value::Array(sources.iter().map(Source::to_value).collect())
}

fn rules_json(rules: &[RuleSources]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| json!({ "value": r.value, "sources": sources_json(&r.sources) }))
            .collect(),
    )
}

fn allow_json(allow: Option<&AllowListExplanation>) -> Value {
    match allow {
        None => Value::Null,
        Some(a) => json!({
            "value": strings(&a.allowed),
            "restrictions": a
                .restrictions
                .iter()
                .map(|r| json!({ "source": r.source.to_value(), "entries": strings(&r.entries) }))
                .collect::<Vec<_>>(),
        }),
    }
}

impl Explanation {
    /// `{"policy": <every field of the effective policy>, "sources": {<field>: ...}}`, where
    /// each block-list field is a list of `{"value", "sources"}`, `security_level` is
    /// `{"value", "sources"}` (no sources: nothing set a level), and each allow-list field is
    /// `null` (no restriction) or `{"value", "restrictions": [{"source", "entries"}]}`. A
    /// source is `{"kind": "default"}` or `{"kind": "group", "group": "<displayName>"}`.
    pub fn to_value(&self) -> Value {
        json!({
            "policy": self.policy.to_value(),
            "sources": {
                "blocked_tools": rules_json(&self.blocked_tools),
                "security_level": {
                    "value": self.security_level.level.as_str(),
                    "sources": sources_json(&self.security_level.sources),
                },
                "blocked_write_paths": rules_json(&self.blocked_write_paths),
                "allowed_skills": allow_json(self.allowed_skills.as_ref()),
                "blocked_mcp_servers": rules_json(&self.blocked_mcp_servers),
                "allowed_web_domains": allow_json(self.allowed_web_domains.as_ref()),
            },
        })
    }

    /// [`Explanation::to_value`], pretty-printed (for `policy show --explain --json`).
    pub fn to_json(&self) -> String {
        format!("{:#}", self.to_value())
    }
}

fn write_rules(f: &mut fmt::Formatter<'_>, field: &str, rules: &[RuleSources]) -> fmt::Result {
    if rules.is_empty() {
        return writeln!(f, "{field}: (none)");
    }
    for rule in rules {
        writeln!(
            f,
            "{field}: {}  <- {}",
            rule.value,
            sources_text(&rule.sources)
        )?;
    }
    Ok(())
}

fn write_allow(
    f: &mut fmt::Formatter<'_>,
    field: &str,
    allow: Option<&AllowListExplanation>,
) -> fmt::Result {
    let Some(allow) = allow else {
        return writeln!(f, "{field}: no restriction");
    };
    write!(f, "{field}: {}", bracketed(&allow.allowed))?;
    if allow.allowed.is_empty() {
        f.write_str(" (none allowed)")?;
    }
    match allow.restrictions.as_slice() {
        [only] => writeln!(f, "  <- {}", only.source),
        all => {
            let parts: Vec<String> = all
                .iter()
                .map(|r| format!("{} {}", r.source, bracketed(&r.entries)))
                .collect();
            writeln!(f, "  <- intersection of {}", parts.join(", "))
        }
    }
}

impl fmt::Display for Explanation {
    /// One line per rule, fields in declaration order, for example:
    ///
    /// ```text
    /// blocked_tools: Bash  <- default, group "Contractors"
    /// security_level: strict  <- group "Security"
    /// blocked_write_paths: (none)
    /// allowed_skills: [pdf]  <- intersection of group "A" [pdf, xlsx], group "B" [pdf]
    /// blocked_mcp_servers: (none)
    /// allowed_web_domains: no restriction
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_rules(f, "blocked_tools", &self.blocked_tools)?;
        let level = &self.security_level;
        if level.sources.is_empty() {
            writeln!(
                f,
                "security_level: {}  <- default (no level set)",
                level.level
            )?;
        } else {
            writeln!(
                f,
                "security_level: {}  <- {}",
                level.level,
                sources_text(&level.sources)
            )?;
        }
        write_rules(f, "blocked_write_paths", &self.blocked_write_paths)?;
        write_allow(f, "allowed_skills", self.allowed_skills.as_ref())?;
        write_rules(f, "blocked_mcp_servers", &self.blocked_mcp_servers)?;
        write_allow(f, "allowed_web_domains", self.allowed_web_domains.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn fixture() -> (
        PolicyOverride,
        PolicyOverride,
        PolicyOverride,
        PolicyOverride,
    ) {
        let defaults = PolicyOverride {
            blocked_tools: strs(&["Bash"]),
            security_level: Some(SecurityLevel::Moderate),
            blocked_write_paths: strs(&["/etc/"]),
            ..PolicyOverride::default()
        };
        let contractors = PolicyOverride {
            blocked_tools: strs(&["Bash", "WebFetch"]),
            blocked_write_paths: strs(&["/etc"]),
            allowed_skills: Some(strs(&["pdf", "xlsx"])),
            ..PolicyOverride::default()
        };
        let security = PolicyOverride {
            security_level: Some(SecurityLevel::Strict),
            allowed_skills: Some(strs(&["pdf"])),
            blocked_mcp_servers: strs(&["github"]),
            ..PolicyOverride::default()
        };
        let strict_too = PolicyOverride {
            security_level: Some(SecurityLevel::Strict),
            ..PolicyOverride::default()
        };
        (defaults, contractors, security, strict_too)
    }

    #[test]
    fn report() {
        let (defaults, contractors, security, strict_too) = fixture();
        // Given out of order: the report sorts groups by name.
        let groups = [
            GroupPolicy {
                group: "Security",
                policy: &security,
            },
            GroupPolicy {
                group: "Contractors",
                policy: &contractors,
            },
            GroupPolicy {
                group: "Auditors",
                policy: &strict_too,
            },
        ];
        let e = explain(&defaults, &groups);
        assert_eq!(
            e.to_string(),
            "blocked_tools: Bash  <- default, group \"Contractors\"\n\
             blocked_tools: WebFetch  <- group \"Contractors\"\n\
             security_level: strict  <- group \"Auditors\", group \"Security\"\n\
             blocked_write_paths: /etc  <- default, group \"Contractors\"\n\
             allowed_skills: [pdf]  <- intersection of group \"Contractors\" [pdf, xlsx], group \"Security\" [pdf]\n\
             blocked_mcp_servers: github  <- group \"Security\"\n\
             allowed_web_domains: no restriction\n"
        );
        assert_eq!(e.policy, effective(&defaults, &groups));
    }

    #[test]
    fn report_of_defaults_only() {
        let e = explain(&PolicyOverride::default(), &[]);
        assert_eq!(
            e.to_string(),
            "blocked_tools: (none)\n\
             security_level: minimal  <- default (no level set)\n\
             blocked_write_paths: (none)\n\
             allowed_skills: no restriction\n\
             blocked_mcp_servers: (none)\n\
             allowed_web_domains: no restriction\n"
        );
        let defaults = PolicyOverride {
            security_level: Some(SecurityLevel::Paranoid),
            allowed_skills: Some(vec![]),
            allowed_web_domains: Some(strs(&["docs.rs"])),
            ..PolicyOverride::default()
        };
        let text = explain(&defaults, &[]).to_string();
        assert!(
            text.contains("security_level: paranoid  <- default\n"),
            "{text}"
        );
        assert!(
            text.contains("allowed_skills: [] (none allowed)  <- default\n"),
            "{text}"
        );
        assert!(
            text.contains("allowed_web_domains: [docs.rs]  <- default\n"),
            "{text}"
        );
    }

    #[test]
    fn empty_intersection_is_explained() {
        let a = PolicyOverride {
            allowed_web_domains: Some(strs(&["a.com"])),
            ..PolicyOverride::default()
        };
        let b = PolicyOverride {
            allowed_web_domains: Some(strs(&["B.com"])),
            ..PolicyOverride::default()
        };
        let e = explain(
            &PolicyOverride::default(),
            &[
                GroupPolicy {
                    group: "A",
                    policy: &a,
                },
                GroupPolicy {
                    group: "B",
                    policy: &b,
                },
            ],
        );
        assert!(
            e.to_string().contains(
                "allowed_web_domains: [] (none allowed)  <- intersection of group \"A\" [a.com], group \"B\" [b.com]\n"
            ),
            "{e}"
        );
    }

    #[test]
    fn json_form() {
        let (defaults, contractors, security, _) = fixture();
        let groups = [
            GroupPolicy {
                group: "Contractors",
                policy: &contractors,
            },
            GroupPolicy {
                group: "Security",
                policy: &security,
            },
        ];
        let e = explain(&defaults, &groups);
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["policy"]["security_level"], "strict");
        assert_eq!(v["policy"]["allowed_skills"], json!(["pdf"]));
        assert_eq!(
            v["sources"]["blocked_tools"][0],
            json!({"value": "Bash", "sources": [{"kind": "default"}, {"kind": "group", "group": "Contractors"}]})
        );
        assert_eq!(
            v["sources"]["security_level"],
            json!({"value": "strict", "sources": [{"kind": "group", "group": "Security"}]})
        );
        assert_eq!(
            v["sources"]["allowed_skills"],
            json!({
                "value": ["pdf"],
                "restrictions": [
                    {"source": {"kind": "group", "group": "Contractors"}, "entries": ["pdf", "xlsx"]},
                    {"source": {"kind": "group", "group": "Security"}, "entries": ["pdf"]}
                ]
            })
        );
        assert!(v["sources"]["allowed_web_domains"].is_null());
        assert_eq!(v["sources"]["blocked_mcp_servers"][0]["value"], "github");
        // A group named "default" is not mistaken for the defaults.
        let g = [GroupPolicy {
            group: "default",
            policy: &security,
        }];
        let v = explain(&PolicyOverride::default(), &g).to_value();
        assert_eq!(
            v["sources"]["security_level"]["sources"],
            json!([{"kind": "group", "group": "default"}])
        );
    }

    #[test]
    fn explanation_matches_effective() {
        // Every combination of a few overrides: the explained sets are the effective ones,
        // and every source named really set the rule.
        let pool = [
            PolicyOverride::default(),
            PolicyOverride {
                blocked_tools: strs(&["Bash", "Read"]),
                allowed_skills: Some(strs(&["a", "b"])),
                allowed_web_domains: Some(strs(&["*.x.com", "y.com"])),
                ..PolicyOverride::default()
            },
            PolicyOverride {
                blocked_tools: strs(&["Read"]),
                security_level: Some(SecurityLevel::Paranoid),
                allowed_skills: Some(strs(&["b", "c"])),
                blocked_write_paths: strs(&["/tmp/"]),
                ..PolicyOverride::default()
            },
            PolicyOverride {
                blocked_mcp_servers: strs(&["s"]),
                allowed_skills: Some(vec![]),
                allowed_web_domains: Some(strs(&["a.x.com"])),
                security_level: Some(SecurityLevel::Moderate),
                blocked_write_paths: strs(&["/tmp"]),
                ..PolicyOverride::default()
            },
        ];
        let names = ["G0", "G1", "G2", "G3"];
        for d in &pool {
            for mask in 0u32..16 {
                let groups: Vec<GroupPolicy<'_>> = (0..4)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| GroupPolicy {
                        group: names[i],
                        policy: &pool[i],
                    })
                    .collect();
                let e = explain(d, &groups);
                let p = effective(d, &groups);
                assert_eq!(e.policy, p);
                let values = |rules: &[RuleSources]| -> BTreeSet<String> {
                    rules.iter().map(|r| r.value.clone()).collect()
                };
                assert_eq!(values(&e.blocked_tools), p.blocked_tools);
                assert_eq!(values(&e.blocked_write_paths), p.blocked_write_paths);
                assert_eq!(values(&e.blocked_mcp_servers), p.blocked_mcp_servers);
                assert_eq!(e.security_level.level, p.security_level);
                assert_eq!(
                    e.allowed_skills.as_ref().map(|a| a.allowed.clone()),
                    p.allowed_skills
                );
                assert_eq!(
                    e.allowed_web_domains.as_ref().map(|a| a.allowed.clone()),
                    p.allowed_web_domains
                );
                for rule in &e.blocked_tools {
                    assert!(!rule.sources.is_empty());
                    for source in &rule.sources {
                        let policy = match source {
                            Source::Default => d,
                            Source::Group(name) => groups
                                .iter()
                                .find(|g| g.group == name)
                                .map(|g| g.policy)
                                .unwrap(),
                        };
                        assert!(policy.blocked_tools.contains(&rule.value));
                    }
                }
            }
        }
    }
}
