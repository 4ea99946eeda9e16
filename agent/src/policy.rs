//! The agent's plain policy type: what the control plane computed for this user, before it is
//! rendered into Claude Code settings by [`crate::settings`].
//!
//! The JSON shape (snake_case fields, the level as a lowercase string) is the one operators
//! write in policy files:
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
//! Every field may be omitted (empty lists, `minimal`, no restriction). Unknown fields are
//! rejected: an agent that does not understand a restriction must refuse (NACK) the policy
//! rather than silently apply a weaker one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::settings;

/// How much of Claude Code's own hardening the policy switches on. Ordered from the weakest
/// to the strongest; each level includes every key of the lower ones (see `SETTINGS.md`).
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
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecurityLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| PolicyError::UnknownLevel(s.to_owned()))
    }
}

/// A policy entry that cannot be rendered into valid Claude Code settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `security_level` is not one of minimal, moderate, strict, paranoid.
    #[error("unknown security level `{0}` (expected minimal, moderate, strict or paranoid)")]
    UnknownLevel(String),
    /// One entry of a list field is invalid.
    #[error("{field}[{index}]: {message}")]
    InvalidEntry {
        /// The policy field, for example `blocked_tools`.
        field: &'static str,
        /// Position of the entry in the list.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// The effective policy of one user, as the agent receives it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Tool names denied outright (`Bash`, `WebFetch`, `mcp__server__*`, ...); see
    /// [`settings::validate_tool_name`].
    pub blocked_tools: Vec<String>,
    /// Hardening level.
    pub security_level: SecurityLevel,
    /// Absolute paths (Unix `/a/b` or Windows `C:\a\b`) no tool may write under.
    pub blocked_write_paths: Vec<String>,
    /// `None`: no restriction. `Some(list)`: only these skills are meant to be usable (see
    /// `SETTINGS.md` for what Claude Code can and cannot enforce). `Some([])`: no skills.
    pub allowed_skills: Option<Vec<String>>,
    /// MCP server names that must not be loaded.
    pub blocked_mcp_servers: Vec<String>,
    /// `None`: no restriction. `Some(list)`: the domains sandboxed commands may reach;
    /// `Some([])` also denies `WebFetch`.
    pub allowed_web_domains: Option<Vec<String>>,
}

impl Policy {
    /// The policy written after deprovisioning: every known tool and every MCP tool denied,
    /// the paranoid level, no skills, no web domains. Rendered, it also sets
    /// `permissions.defaultMode: "dontAsk"` (see [`settings::render`]).
    pub fn lockdown() -> Policy {
        let mut blocked_tools: Vec<String> = settings::KNOWN_TOOLS
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        blocked_tools.push(settings::ALL_MCP_TOOLS.to_owned());
        Policy {
            blocked_tools,
            security_level: SecurityLevel::Paranoid,
            blocked_write_paths: Vec::new(),
            allowed_skills: Some(Vec::new()),
            blocked_mcp_servers: Vec::new(),
            allowed_web_domains: Some(Vec::new()),
        }
    }

    /// True when every known tool and `mcp__*` are in `blocked_tools` (as in
    /// [`Policy::lockdown`]).
    pub fn denies_every_tool(&self) -> bool {
        let blocked = |name: &str| self.blocked_tools.iter().any(|t| t == name);
        settings::KNOWN_TOOLS.iter().all(|t| blocked(t)) && blocked(settings::ALL_MCP_TOOLS)
    }

    /// Checks every entry; the first invalid one is reported. An agent should NACK a policy
    /// that fails here and keep applying its last good one.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check_each("blocked_tools", &self.blocked_tools, |t| {
            settings::validate_tool_name(t)
        })?;
        check_each("blocked_write_paths", &self.blocked_write_paths, |p| {
            settings::validate_write_path(p)
        })?;
        if let Some(skills) = &self.allowed_skills {
            check_each("allowed_skills", skills, |s| {
                settings::validate_skill_name(s)
            })?;
        }
        check_each("blocked_mcp_servers", &self.blocked_mcp_servers, |s| {
            settings::validate_mcp_server_name(s)
        })?;
        if let Some(domains) = &self.allowed_web_domains {
            check_each("allowed_web_domains", domains, |d| {
                settings::validate_domain(d)
            })?;
        }
        Ok(())
    }
}

fn check_each(
    field: &'static str,
    entries: &[String],
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<(), PolicyError> {
    for (index, entry) in entries.iter().enumerate() {
        check(entry).map_err(|message| PolicyError::InvalidEntry {
            field,
            index,
            message,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(SecurityLevel::Minimal < SecurityLevel::Moderate);
        assert!(SecurityLevel::Moderate < SecurityLevel::Strict);
        assert!(SecurityLevel::Strict < SecurityLevel::Paranoid);
        assert_eq!(
            SecurityLevel::ALL.iter().max(),
            Some(&SecurityLevel::Paranoid)
        );
    }

    #[test]
    fn level_round_trips_as_lowercase() {
        for level in SecurityLevel::ALL {
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{level}\""));
            assert_eq!(level.as_str().parse::<SecurityLevel>().unwrap(), level);
        }
        assert!(serde_json::from_str::<SecurityLevel>("\"Strict\"").is_err());
        assert_eq!(
            "high".parse::<SecurityLevel>(),
            Err(PolicyError::UnknownLevel("high".into()))
        );
    }

    #[test]
    fn deserializes_snake_case_with_defaults() {
        let p: Policy = serde_json::from_str(
            r#"{"blocked_tools":["Bash"],"security_level":"paranoid","allowed_skills":[]}"#,
        )
        .unwrap();
        assert_eq!(p.blocked_tools, vec!["Bash"]);
        assert_eq!(p.security_level, SecurityLevel::Paranoid);
        assert_eq!(p.allowed_skills, Some(vec![]));
        assert_eq!(p.allowed_web_domains, None);
        assert!(p.blocked_write_paths.is_empty());

        let empty: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Policy::default());
        assert_eq!(empty.security_level, SecurityLevel::Minimal);
    }

    #[test]
    fn serializes_snake_case() {
        let v = serde_json::to_value(Policy::default()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "blocked_tools",
            "security_level",
            "blocked_write_paths",
            "allowed_skills",
            "blocked_mcp_servers",
            "allowed_web_domains",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert_eq!(v["security_level"], "minimal");
        assert!(v["allowed_skills"].is_null());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<Policy>(r#"{"blocked_tool":["Bash"]}"#).unwrap_err();
        assert!(err.to_string().contains("blocked_tool"), "{err}");
    }

    #[test]
    fn lockdown_denies_everything_and_is_valid() {
        let p = Policy::lockdown();
        assert!(p.denies_every_tool());
        assert_eq!(p.security_level, SecurityLevel::Paranoid);
        assert_eq!(p.allowed_skills, Some(vec![]));
        p.validate().unwrap();
        assert!(!Policy::default().denies_every_tool());
    }

    #[test]
    fn validate_reports_field_and_index() {
        let p = Policy {
            blocked_tools: vec!["Bash".into(), "bash".into()],
            ..Policy::default()
        };
        match p.validate() {
            Err(PolicyError::InvalidEntry {
                field,
                index,
                message,
            }) => {
                assert_eq!(field, "blocked_tools");
                assert_eq!(index, 1);
                assert!(message.contains("did you mean `Bash`"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }

        let p = Policy {
            blocked_write_paths: vec!["relative/dir".into()],
            ..Policy::default()
        };
        let msg = p.validate().unwrap_err().to_string();
        assert!(msg.starts_with("blocked_write_paths[0]: "), "{msg}");
        assert!(msg.contains("absolute"), "{msg}");
    }
}
