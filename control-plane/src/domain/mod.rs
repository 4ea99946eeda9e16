//! Plain domain types shared by every layer: organisations, credentials, users, groups, actors.
//! No I/O and no wire formats here: the SCIM attribute document is carried as opaque JSON.

pub mod audit;
mod devices;
mod identity;
pub mod usage;

pub use audit::AuditAction;
pub use devices::{Device, DeviceAuth, DeviceInfo, EnrollToken, Enrollment};
pub use identity::{
    DeviceGrant, EnrollMethod, GrantStatus, IdentityClaim, Invite, MatchAttribute, OidcConfig,
    SignedInPerson,
};

use serde_json::Value;

/// Microseconds since the Unix epoch: the one time representation inside Palisade.
pub type Micros = i64;

/// The current time in microseconds since the Unix epoch.
pub fn now_micros() -> Micros {
    chrono::Utc::now().timestamp_micros()
}

/// Formats a timestamp as RFC 3339 with millisecond precision (UTC), as SCIM clients expect.
pub fn to_rfc3339(t: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An organisation: the tenant every user, group and credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub slug: String,
    pub created_at: Micros,
}

/// The name of the organisation that always exists.
pub const DEFAULT_ORG_SLUG: &str = "default";

/// Checks an organisation slug: 1–63 lower-case letters, digits and dashes, starting with a letter or digit.
pub fn validate_org_slug(slug: &str) -> Result<(), String> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid organisation slug {slug:?}: use 1-63 lower-case letters, digits and dashes, not starting with a dash"
        ))
    }
}

/// A SCIM bearer credential as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimToken {
    pub id: String,
    pub org_id: String,
    pub label: String,
    /// The first characters of the token: enough to recognise it, useless to an attacker.
    pub prefix: String,
    pub created_at: Micros,
    pub last_used_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
}

/// Who made a change, as recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ScimToken {
        id: String,
        label: String,
    },
    EnrollToken {
        id: String,
    },
    Device {
        id: String,
    },
    /// A person signed in with the organisation's IdP.
    Person {
        user_id: String,
        user_name: String,
    },
    /// A person (or the one-time owner link) acting in the admin console, from `source`.
    Admin {
        /// Who: `person:<userName>` or `owner-link:<id>`.
        name: String,
        source: String,
    },
    /// An admin API token, from `source`.
    ApiToken {
        id: String,
        label: String,
        source: String,
    },
    /// A per-user activation code.
    Invite {
        id: String,
    },
    /// An operator running the `palisade-control-plane` command on a host: the login that ran
    /// it (`SUDO_USER` first, so `sudo` records the person, not root).
    Operator {
        login: String,
    },
    /// The control plane itself (a scheduled or derived change, such as a new policy version).
    System,
}

impl Actor {
    /// The operator running this process, from the environment (`SUDO_USER`, `USER`,
    /// `LOGNAME`, `USERNAME`); `unknown` when none is set.
    pub fn operator() -> Actor {
        let login = ["SUDO_USER", "USER", "LOGNAME", "USERNAME"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .map(|v| {
                v.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
            .find(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        Actor::Operator { login }
    }

    /// Where the change came from (the client address of a console or API request).
    pub fn source(&self) -> &str {
        match self {
            Actor::Admin { source, .. } | Actor::ApiToken { source, .. } => source,
            _ => "",
        }
    }

    pub fn audit_name(&self) -> String {
        match self {
            Actor::ScimToken { id, label } if !label.is_empty() => {
                format!("scim-token:{label} ({id})")
            }
            Actor::ScimToken { id, .. } => format!("scim-token:{id}"),
            Actor::EnrollToken { id } => format!("enroll-token:{id}"),
            Actor::Device { id } => format!("device:{id}"),
            Actor::Person { user_name, .. } if !user_name.is_empty() => {
                format!("person:{user_name}")
            }
            Actor::Person { user_id, .. } => format!("person:{user_id}"),
            Actor::Admin { name, .. } => name.clone(),
            Actor::ApiToken { id, label, .. } => format!("api-token:{label} ({id})"),
            Actor::Invite { id } => format!("invite:{id}"),
            Actor::Operator { login } => format!("cli:{login}"),
            Actor::System => "system".to_string(),
        }
    }
}

/// A provisioned user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// The Palisade role named by the IdP's primary role, if any.
    pub primary_role: Option<String>,
    /// The identity provider's attribute document (opaque outside the SCIM edge).
    pub attributes: Value,
    pub version: i64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// What a create or a full replace of a user writes.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrite {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub primary_role: Option<String>,
    /// The primary (or only) email, for matching a sign-in to the person.
    pub primary_email: Option<String>,
    pub attributes: Value,
}

/// A provisioned group (membership is held separately, see [`GroupMember`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub org_id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub attributes: Value,
    pub version: i64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// What a create or a full replace of a group writes (members excluded).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
    pub attributes: Value,
}

/// One member of a group, with the user's name for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub user_id: String,
    pub user_name: String,
}

/// A change to a group's member list, applied as row inserts and deletes so that concurrent
/// changes never lose each other's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    ReplaceAll(Vec<String>),
}

/// A group the user belongs to, for the user's read-only `groups` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub group_id: String,
    pub display_name: String,
}

/// The Palisade roles an IdP can assign.
pub const ROLES: [&str; 4] = ["admin", "security", "developer", "read-only"];

/// Normalises a role name (`Admin`, `read_only`, `READ-ONLY`) to its canonical spelling.
pub fn parse_role(name: &str) -> Option<&'static str> {
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    let n = if n == "readonly" {
        "read-only".to_string()
    } else {
        n
    };
    ROLES.iter().copied().find(|r| *r == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_roles() {
        assert!(validate_org_slug("acme-eu").is_ok());
        assert!(validate_org_slug("Acme").is_err());
        assert!(validate_org_slug("").is_err());
        assert!(validate_org_slug("-x").is_err());
        assert_eq!(parse_role("Read_Only"), Some("read-only"));
        assert_eq!(parse_role("ADMIN"), Some("admin"));
        assert_eq!(parse_role("owner"), None);
    }

    #[test]
    fn formats_times_as_rfc3339_millis() {
        assert_eq!(
            to_rfc3339(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
