//! Proven identity: the organisation's OpenID Connect configuration, how a signed-in person is
//! matched to a provisioned user, enrollment methods, sign-in grants and activation codes.

use super::Micros;

/// Which claim of the ID token (or userinfo) names the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdentityClaim {
    #[default]
    Email,
    PreferredUsername,
    Sub,
    Upn,
}

impl IdentityClaim {
    pub const ALL: [IdentityClaim; 4] = [
        IdentityClaim::Email,
        IdentityClaim::PreferredUsername,
        IdentityClaim::Sub,
        IdentityClaim::Upn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityClaim::Email => "email",
            IdentityClaim::PreferredUsername => "preferred_username",
            IdentityClaim::Sub => "sub",
            IdentityClaim::Upn => "upn",
        }
    }

    pub fn parse(s: &str) -> Option<IdentityClaim> {
        IdentityClaim::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Which provisioned attribute the claim is compared with (case-insensitively, except
/// `externalId`, which IdPs treat as an opaque id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchAttribute {
    #[default]
    UserName,
    /// The user's primary email (or the only one).
    Email,
    ExternalId,
}

impl MatchAttribute {
    pub const ALL: [MatchAttribute; 3] = [
        MatchAttribute::UserName,
        MatchAttribute::Email,
        MatchAttribute::ExternalId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MatchAttribute::UserName => "userName",
            MatchAttribute::Email => "email",
            MatchAttribute::ExternalId => "externalId",
        }
    }

    pub fn parse(s: &str) -> Option<MatchAttribute> {
        MatchAttribute::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// An organisation's OpenID provider, with the client secret still encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub org_id: String,
    pub issuer: String,
    pub client_id: String,
    /// Ciphertext (see `crypto::SecretsKey`); never shown.
    pub client_secret_encrypted: String,
    pub claim: IdentityClaim,
    pub match_attribute: MatchAttribute,
    pub updated_at: Micros,
}

/// How a device came to be enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollMethod {
    /// The person signed in with the IdP and confirmed the device.
    SignIn,
    /// A one-time per-user activation code.
    ActivationCode,
    /// The MDM fleet token plus the person the MDM claims (unverified unless the org trusts it).
    MdmToken,
}

impl EnrollMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollMethod::SignIn => "sign-in",
            EnrollMethod::ActivationCode => "activation-code",
            EnrollMethod::MdmToken => "mdm-token",
        }
    }
}

/// Where an interactive sign-in grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    Pending,
    Approved,
    Denied,
    /// The agent collected its credential; the grant can never be used again.
    Consumed,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Approved => "approved",
            GrantStatus::Denied => "denied",
            GrantStatus::Consumed => "consumed",
        }
    }

    pub fn parse(s: &str) -> Option<GrantStatus> {
        [
            GrantStatus::Pending,
            GrantStatus::Approved,
            GrantStatus::Denied,
            GrantStatus::Consumed,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

/// An interactive sign-in grant as the confirmation page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    pub id: String,
    pub org_id: String,
    pub user_code: String,
    /// Set when an enrolled, unverified device asks its person to confirm it.
    pub device_id: Option<String>,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub source_addr: String,
    pub status: GrantStatus,
    pub user_id: Option<String>,
    pub created_at: Micros,
    pub expires_at: Micros,
}

/// A per-user activation code as listed (never the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub user_name: String,
    pub prefix: String,
    pub created_at: Micros,
    pub expires_at: Micros,
    pub used_at: Option<Micros>,
    pub used_device_id: Option<String>,
    pub revoked_at: Option<Micros>,
}

/// A person the IdP vouched for, matched to an active provisioned user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInPerson {
    pub org_id: String,
    pub user_id: String,
    pub user_name: String,
}
