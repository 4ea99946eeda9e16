//! Enrollment tokens and enrolled devices (one workstation agent each, bound to one user).

use super::Micros;

/// An organisation enrollment token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollToken {
    pub id: String,
    pub org_id: String,
    pub prefix: String,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
    pub last_used_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
}

/// What an agent tells about itself when it enrolls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
}

/// A device just enrolled: its credential is shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub device_id: String,
    pub credential: String,
    pub org_id: String,
    pub org_slug: String,
    pub user_id: String,
    pub user_name: String,
}

/// A device whose credential authenticated a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub device_id: String,
    pub org_id: String,
    pub user_id: String,
    /// Set when the device was revoked (deprovisioning); the agent must wipe.
    pub revoked_reason: Option<String>,
}

/// A device as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub user_id: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub enrolled_at: Micros,
    pub last_seen_at: Option<Micros>,
    pub applied_version: Option<i64>,
    pub last_error: Option<String>,
    pub revoked_at: Option<Micros>,
    pub revoked_reason: Option<String>,
    pub wiped_at: Option<Micros>,
}
