//! The policy stream's messages as plain types: what the control plane tells the agent
//! ([`ServerEvent`], [`Snapshot`]) and what the agent reports back ([`AgentEvent`]). Only
//! [`crate::link::grpc`] converts them to and from protobuf.

use std::fmt;

use serde::{Deserialize, Serialize};

use palisade_policy::Policy;

/// What the agent does once a snapshot's validity deadline passes without contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineRule {
    /// Keep applying the last policy.
    KeepLast,
    /// Write the lockdown policy until the control plane is reachable again.
    Lockdown,
}

impl OfflineRule {
    /// `keep_last` or `lockdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineRule::KeepLast => "keep_last",
            OfflineRule::Lockdown => "lockdown",
        }
    }
}

impl fmt::Display for OfflineRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How Claude Code gets the organisation's API key on this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyDelivery {
    /// `apiKeyHelper` prints the key (the developer's key file holds it).
    #[default]
    Helper,
    /// The agent keeps the key and relays Claude Code's requests ([`crate::relay`]); the
    /// developer's key file holds only a local token.
    Proxy,
}

/// One full policy for this device's user.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Per-user version; only grows.
    pub version: u64,
    /// Echoed in the ACK or NACK.
    pub nonce: String,
    /// The effective policy (not yet validated).
    pub policy: Policy,
    /// Server-clock Unix milliseconds after which the offline rule applies; `None` when the
    /// server sent no deadline.
    pub valid_until_unix_ms: Option<i64>,
    /// What to do after the deadline.
    pub offline_rule: OfflineRule,
    /// The Anthropic API key for the user, if the organisation or a group has one.
    pub api_key: Option<String>,
    /// SHA-256 hex of the server's canonical policy.
    pub policy_sha256: String,
    /// The person has not confirmed this (MDM-enrolled) device yet: no API key comes.
    pub device_unverified: bool,
    /// Where the person confirms the device, while it is unverified.
    pub confirm_url: Option<String>,
    /// How the key reaches Claude Code.
    pub key_delivery: KeyDelivery,
    /// Where the relay forwards (`None`: the Anthropic API).
    pub upstream_url: Option<String>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("nonce", &self.nonce)
            .field("policy", &self.policy)
            .field("valid_until_unix_ms", &self.valid_until_unix_ms)
            .field("offline_rule", &self.offline_rule)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("policy_sha256", &self.policy_sha256)
            .field("device_unverified", &self.device_unverified)
            .field("confirm_url", &self.confirm_url)
            .field("key_delivery", &self.key_delivery)
            .field("upstream_url", &self.upstream_url)
            .finish()
    }
}

/// A message from the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A policy to apply, then ACK.
    Snapshot(Snapshot),
    /// A snapshot the agent could not even decode into a policy: NACK it.
    InvalidSnapshot {
        /// The snapshot's version.
        version: u64,
        /// The snapshot's nonce.
        nonce: String,
        /// Why it was refused.
        error: String,
    },
    /// The server is alive; the deadline moves.
    Keepalive {
        /// New server-clock deadline, if any.
        valid_until_unix_ms: Option<i64>,
        /// The server's clock when it sent this, if given.
        server_time_unix_ms: Option<i64>,
    },
    /// The user was deprovisioned or the device revoked: wipe.
    Deprovision {
        /// Free text from the server, for the log.
        reason: String,
    },
}

/// How a watched file was tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperKind {
    /// The content (or permissions) changed.
    Modified,
    /// The file (or its directory) was removed.
    Deleted,
}

impl TamperKind {
    /// `modified` or `deleted`, as in the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            TamperKind::Modified => "modified",
            TamperKind::Deleted => "deleted",
        }
    }
}

/// A restored tamper event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TamperRecord {
    /// The file that was changed.
    pub path: String,
    /// What happened to it.
    pub kind: TamperKind,
    /// When the change was noticed (Unix ms).
    pub detected_at_unix_ms: i64,
    /// When the policy was back on disk (Unix ms).
    pub restored_at_unix_ms: i64,
}

/// The outcome of a wipe.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WipeRecord {
    /// Why (the server's reason, or "device revoked").
    pub reason: String,
    /// What was removed (paths, keychain items, the lockdown write).
    pub removed: Vec<String>,
    /// What could not be removed, with the error.
    pub failed: Vec<String>,
    /// When (Unix ms).
    pub wiped_at_unix_ms: i64,
}

/// A condition an administrator should see: a higher-precedence managed source, a drop-in
/// that overrides the agent's, a policy entry that does not apply on this platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Warning {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable detail.
    pub detail: String,
}

/// A message from the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The snapshot was applied.
    Ack {
        /// Its version.
        version: u64,
        /// Its nonce.
        nonce: String,
    },
    /// The snapshot was refused; the last good policy stays.
    Nack {
        /// Its version.
        version: u64,
        /// Its nonce.
        nonce: String,
        /// Why.
        error: String,
    },
    /// The drop-in was changed by someone else and restored.
    Tamper(TamperRecord),
    /// The agent wiped its credentials.
    Wipe(WipeRecord),
    /// A condition to report.
    Warning(Warning),
    /// The relay's cumulative usage counters.
    Usage(UsageSnapshot),
}

/// The relay's counters as reported: (UTC day, model, totals) since `epoch` began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSnapshot {
    /// The counters' epoch.
    pub epoch: String,
    /// Every kept counter.
    pub counters: Vec<(i64, String, crate::relay::usage::Tokens)>,
}
