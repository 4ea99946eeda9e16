//! Enrollment tokens and enrolled devices (one workstation agent each, bound to one user).

use super::{EnrollMethod, Micros};

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
    /// Whether the person is proven (sign-in, activation code, or a trusted MDM).
    pub verified: bool,
    pub method: EnrollMethod,
}

/// A device whose credential authenticated a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub device_id: String,
    pub org_id: String,
    pub user_id: String,
    /// Set when the device was revoked (deprovisioning); the agent must wipe.
    pub revoked_reason: Option<String>,
    /// Unverified devices get the policy but never the API key.
    pub verified: bool,
}

/// A device as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub user_id: String,
    pub user_name: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub enrolled_at: Micros,
    pub last_seen_at: Option<Micros>,
    pub applied_version: Option<i64>,
    /// The version the person's agents should hold now; absent before the first delivery.
    pub current_version: Option<i64>,
    pub last_error: Option<String>,
    pub revoked_at: Option<Micros>,
    pub revoked_reason: Option<String>,
    pub wiped_at: Option<Micros>,
    pub verified: bool,
    /// `sign-in`, `activation-code`, `mdm-token`, or empty for devices enrolled before methods
    /// were recorded.
    pub enroll_method: String,
    /// Tampered settings the agent reported restoring, ever.
    pub tamper_count: i64,
    pub last_tamper_at: Option<Micros>,
}
