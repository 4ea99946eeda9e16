//! What the audit trail records: every kind of event as one typed action, written as its
//! stable dotted name (`user.create`, `device.enroll.refused`, ...). The names are what
//! `audit` prints and what operators filter on; they never change once released.

use std::fmt;

/// One kind of audited event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    OrgCreate,
    OrgSettingsSet,
    OrgPolicySetDefault,
    OidcSet,
    ScimTokenCreate,
    ScimTokenRevoke,
    EnrollTokenCreate,
    EnrollTokenRotate,
    EnrollTokenRevoke,
    ApiKeySet,
    InviteCreate,
    InviteRevoke,
    UserCreate,
    UserUpdate,
    UserDeactivate,
    UserReactivate,
    UserDelete,
    UserDeprovision,
    UserPolicyVersion,
    GroupCreate,
    GroupUpdate,
    GroupDelete,
    GroupPolicySet,
    GroupRoleSet,
    SignIn,
    SignInRefused,
    DeviceEnroll,
    DeviceEnrollRefused,
    DeviceAuthorize,
    DeviceAuthorizeRefused,
    DeviceDeny,
    DeviceVerify,
    DeviceVerifyRefused,
    DeviceDisown,
    DeviceNack,
    DeviceTamper,
    DeviceWipe,
    DeviceRefused,
    DeviceWarning,
    ApiTokenCreate,
    ApiTokenRevoke,
    DeviceRevoke,
    AdminLoginLink,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 43] = [
        AuditAction::OrgCreate,
        AuditAction::OrgSettingsSet,
        AuditAction::OrgPolicySetDefault,
        AuditAction::OidcSet,
        AuditAction::ScimTokenCreate,
        AuditAction::ScimTokenRevoke,
        AuditAction::EnrollTokenCreate,
        AuditAction::EnrollTokenRotate,
        AuditAction::EnrollTokenRevoke,
        AuditAction::ApiKeySet,
        AuditAction::InviteCreate,
        AuditAction::InviteRevoke,
        AuditAction::UserCreate,
        AuditAction::UserUpdate,
        AuditAction::UserDeactivate,
        AuditAction::UserReactivate,
        AuditAction::UserDelete,
        AuditAction::UserDeprovision,
        AuditAction::UserPolicyVersion,
        AuditAction::GroupCreate,
        AuditAction::GroupUpdate,
        AuditAction::GroupDelete,
        AuditAction::GroupPolicySet,
        AuditAction::GroupRoleSet,
        AuditAction::SignIn,
        AuditAction::SignInRefused,
        AuditAction::DeviceEnroll,
        AuditAction::DeviceEnrollRefused,
        AuditAction::DeviceAuthorize,
        AuditAction::DeviceAuthorizeRefused,
        AuditAction::DeviceDeny,
        AuditAction::DeviceVerify,
        AuditAction::DeviceVerifyRefused,
        AuditAction::DeviceDisown,
        AuditAction::DeviceNack,
        AuditAction::DeviceTamper,
        AuditAction::DeviceWipe,
        AuditAction::DeviceRefused,
        AuditAction::DeviceWarning,
        AuditAction::ApiTokenCreate,
        AuditAction::ApiTokenRevoke,
        AuditAction::DeviceRevoke,
        AuditAction::AdminLoginLink,
    ];

    /// The stable name stored in the trail.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::OrgCreate => "org.create",
            AuditAction::OrgSettingsSet => "org.settings.set",
            AuditAction::OrgPolicySetDefault => "org.policy.set-default",
            AuditAction::OidcSet => "oidc.set",
            AuditAction::ScimTokenCreate => "scim-token.create",
            AuditAction::ScimTokenRevoke => "scim-token.revoke",
            AuditAction::EnrollTokenCreate => "enroll-token.create",
            AuditAction::EnrollTokenRotate => "enroll-token.rotate",
            AuditAction::EnrollTokenRevoke => "enroll-token.revoke",
            AuditAction::ApiKeySet => "api-key.set",
            AuditAction::InviteCreate => "invite.create",
            AuditAction::InviteRevoke => "invite.revoke",
            AuditAction::UserCreate => "user.create",
            AuditAction::UserUpdate => "user.update",
            AuditAction::UserDeactivate => "user.deactivate",
            AuditAction::UserReactivate => "user.reactivate",
            AuditAction::UserDelete => "user.delete",
            AuditAction::UserDeprovision => "user.deprovision",
            AuditAction::UserPolicyVersion => "user.policy.version",
            AuditAction::GroupCreate => "group.create",
            AuditAction::GroupUpdate => "group.update",
            AuditAction::GroupDelete => "group.delete",
            AuditAction::GroupPolicySet => "group.policy.set",
            AuditAction::GroupRoleSet => "group.role.set",
            AuditAction::SignIn => "signin",
            AuditAction::SignInRefused => "signin.refused",
            AuditAction::DeviceEnroll => "device.enroll",
            AuditAction::DeviceEnrollRefused => "device.enroll.refused",
            AuditAction::DeviceAuthorize => "device.authorize",
            AuditAction::DeviceAuthorizeRefused => "device.authorize.refused",
            AuditAction::DeviceDeny => "device.deny",
            AuditAction::DeviceVerify => "device.verify",
            AuditAction::DeviceVerifyRefused => "device.verify.refused",
            AuditAction::DeviceDisown => "device.disown",
            AuditAction::DeviceNack => "device.nack",
            AuditAction::DeviceTamper => "device.tamper",
            AuditAction::DeviceWipe => "device.wipe",
            AuditAction::DeviceRefused => "device.refused",
            AuditAction::DeviceWarning => "device.warning",
            AuditAction::ApiTokenCreate => "api-token.create",
            AuditAction::ApiTokenRevoke => "api-token.revoke",
            AuditAction::DeviceRevoke => "device.revoke",
            AuditAction::AdminLoginLink => "admin.login-link",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_dotted() {
        let names: std::collections::BTreeSet<&str> =
            AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), AuditAction::ALL.len());
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '.' || c == '-')));
    }
}
