//! Who is acting in the console or the API, and what their role lets them do. Every service
//! function of [`crate::admin`] takes a [`Principal`] and checks one [`Capability`] first, so
//! the console and the API enforce the same rule in the same place.

use std::collections::BTreeSet;

use serde::Serialize;

use super::AdminError;
use crate::domain::Actor;
use crate::roles::Role;

/// What a principal may do in the console and the API, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AdminRole {
    /// The one-time owner link (first setup, break-glass): everything.
    Owner,
    /// Everything.
    Admin,
    /// Policies, devices and audit; never credentials or organisation settings.
    Security,
    /// Views everything an admin sees; changes nothing.
    ReadOnly,
    /// Any other active person: only their own page.
    Member,
}

/// One kind of thing a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read members, groups, policies, devices, settings and credentials' metadata.
    View,
    /// Read the audit trail.
    ViewAudit,
    /// Change org defaults and group policies.
    EditPolicy,
    /// Revoke devices.
    ManageDevices,
    /// Create and revoke SCIM credentials, admin API tokens, enrollment tokens, invitations.
    ManageCredentials,
    /// Change the organisation's settings.
    EditSettings,
}

impl AdminRole {
    /// `owner`, `admin`, `security`, `read-only`, `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Owner => "owner",
            AdminRole::Admin => "admin",
            AdminRole::Security => "security",
            AdminRole::ReadOnly => "read-only",
            AdminRole::Member => "member",
        }
    }

    /// The roles an API token may carry (never owner: that is the break-glass link's alone).
    pub fn for_token(name: &str) -> Option<AdminRole> {
        match name.parse::<Role>().ok()? {
            Role::Admin => Some(AdminRole::Admin),
            Role::Security => Some(AdminRole::Security),
            Role::ReadOnly => Some(AdminRole::ReadOnly),
            Role::Developer => None,
        }
    }

    /// A signed-in person's console role: the highest of their Palisade roles.
    pub fn of_person(roles: &BTreeSet<Role>) -> AdminRole {
        roles
            .iter()
            .map(|r| match r {
                Role::Admin => AdminRole::Admin,
                Role::Security => AdminRole::Security,
                Role::ReadOnly => AdminRole::ReadOnly,
                Role::Developer => AdminRole::Member,
            })
            .min()
            .unwrap_or(AdminRole::Member)
    }

    /// Whether this role may do `what`.
    pub fn allows(self, what: Capability) -> bool {
        use Capability::*;
        match self {
            AdminRole::Owner | AdminRole::Admin => true,
            AdminRole::Security => {
                matches!(what, View | ViewAudit | EditPolicy | ManageDevices)
            }
            AdminRole::ReadOnly => matches!(what, View | ViewAudit),
            AdminRole::Member => false,
        }
    }
}

/// Who is acting: their organisation, role, and the actor the audit trail records (with the
/// request's source address).
#[derive(Debug, Clone)]
pub struct Principal {
    pub org_id: String,
    pub role: AdminRole,
    pub actor: Actor,
    /// The signed-in person, when it is one (their own page).
    pub user_id: Option<String>,
}

impl Principal {
    /// Refuses unless the role allows `what`.
    pub fn require(&self, what: Capability) -> Result<(), AdminError> {
        if self.role.allows(what) {
            Ok(())
        } else {
            Err(AdminError::Forbidden(format!(
                "the {} role may not do this",
                self.role.as_str()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_issue_says() {
        use Capability::*;
        let all = [
            View,
            ViewAudit,
            EditPolicy,
            ManageDevices,
            ManageCredentials,
            EditSettings,
        ];
        assert!(all.iter().all(|c| AdminRole::Owner.allows(*c)));
        assert!(all.iter().all(|c| AdminRole::Admin.allows(*c)));
        assert!(!AdminRole::Security.allows(ManageCredentials));
        assert!(!AdminRole::Security.allows(EditSettings));
        assert!(
            AdminRole::Security.allows(EditPolicy) && AdminRole::Security.allows(ManageDevices)
        );
        assert!(AdminRole::ReadOnly.allows(View) && AdminRole::ReadOnly.allows(ViewAudit));
        assert!(!AdminRole::ReadOnly.allows(EditPolicy));
        assert!(all.iter().all(|c| !AdminRole::Member.allows(*c)));
    }

    #[test]
    fn a_person_gets_their_highest_role() {
        let roles: BTreeSet<Role> = [Role::Developer, Role::ReadOnly, Role::Security].into();
        assert_eq!(AdminRole::of_person(&roles), AdminRole::Security);
        assert_eq!(AdminRole::of_person(&BTreeSet::new()), AdminRole::Member);
        assert_eq!(AdminRole::for_token("read_only"), Some(AdminRole::ReadOnly));
        assert_eq!(AdminRole::for_token("developer"), None);
        assert_eq!(AdminRole::for_token("owner"), None);
    }
}
