//! Palisade roles: what a user may do in Palisade itself. IdP groups map to roles (set by
//! `role-map set`), and a SCIM `roles[primary eq true].value` names one directly.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use palisade_policy::rules::quote;

/// A Palisade role. Ordered as declared (the order of [`Role::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Manages the organisation: policies, role mappings, tokens, keys.
    Admin,
    /// Reads everything, including audit and explanations.
    Security,
    /// The default role of every user.
    Developer,
    /// May only read.
    ReadOnly,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Security, Role::Developer, Role::ReadOnly];

    /// `admin`, `security`, `developer` or `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Security => "security",
            Role::Developer => "developer",
            Role::ReadOnly => "read-only",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a Palisade role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {} (expected admin, security, developer, read-only)", quote(.value))]
pub struct ParseRoleError {
    /// The name as given.
    pub value: String,
}

impl FromStr for Role {
    type Err = ParseRoleError;

    /// Any case, surrounding spaces ignored; `read-only`, `read_only` and `readonly` are the
    /// same role (IdPs spell it every way).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase().replace('_', "-");
        let name = if name == "readonly" {
            "read-only"
        } else {
            name.as_str()
        };
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| ParseRoleError {
                value: s.to_owned(),
            })
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    /// As [`Role::from_str`]: lenient on case and spelling.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The roles of a user: the union of the roles mapped from their groups and the SCIM primary
/// role; `developer` when that is empty.
pub fn effective_roles(primary_role: Option<Role>, group_roles: &[Role]) -> BTreeSet<Role> {
    let mut roles: BTreeSet<Role> = group_roles.iter().copied().collect();
    roles.extend(primary_role);
    if roles.is_empty() {
        roles.insert(Role::Developer);
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
    }

    #[test]
    fn lenient_parsing() {
        for (name, role) in [
            ("ADMIN", Role::Admin),
            (" Security ", Role::Security),
            ("Developer", Role::Developer),
            ("read-only", Role::ReadOnly),
            ("read_only", Role::ReadOnly),
            ("Read_Only", Role::ReadOnly),
            ("readonly", Role::ReadOnly),
            ("ReadOnly", Role::ReadOnly),
            ("READ-ONLY", Role::ReadOnly),
        ] {
            assert_eq!(name.parse::<Role>(), Ok(role), "{name}");
        }
        assert_eq!(
            serde_json::from_str::<Role>("\"Read_Only\"").unwrap(),
            Role::ReadOnly
        );
        let err = "owner".parse::<Role>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown role \"owner\" (expected admin, security, developer, read-only)"
        );
        for bad in ["", "read only", "admins", "read--only"] {
            assert!(bad.parse::<Role>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Role>("\"owner\"").is_err());
    }

    #[test]
    fn roles_are_a_union_with_developer_by_default() {
        let set = |roles: &[Role]| roles.iter().copied().collect::<BTreeSet<Role>>();
        assert_eq!(effective_roles(None, &[]), set(&[Role::Developer]));
        assert_eq!(effective_roles(Some(Role::Admin), &[]), set(&[Role::Admin]));
        assert_eq!(
            effective_roles(None, &[Role::Security, Role::ReadOnly, Role::Security]),
            set(&[Role::Security, Role::ReadOnly])
        );
        assert_eq!(
            effective_roles(Some(Role::ReadOnly), &[Role::Admin]),
            set(&[Role::Admin, Role::ReadOnly])
        );
        // Developer is only the fallback, not added to other roles.
        assert!(!effective_roles(None, &[Role::Admin]).contains(&Role::Developer));
    }
}
