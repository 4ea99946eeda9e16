//! The security levels, an ordered choice (minimal < moderate < strict < paranoid). What
//! each one switches on is its bundle of keys in [`crate::bundles`].

use std::fmt;
use std::str::FromStr;

/// How much of Claude Code's own hardening a policy switches on, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SecurityLevel {
    #[default]
    Minimal,
    Moderate,
    Strict,
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

/// A name that is not a level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown security level {} (expected minimal, moderate, strict or paranoid)", crate::rules::quote(.0))]
pub struct ParseLevelError(pub String);

impl FromStr for SecurityLevel {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecurityLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| ParseLevelError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!("strict".parse(), Ok(SecurityLevel::Strict));
        assert!("Strict".parse::<SecurityLevel>().is_err());
    }
}
