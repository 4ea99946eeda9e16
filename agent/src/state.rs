//! The agent's state directory: a 0700 directory of 0600 files, each replaced atomically with
//! [`crate::enforce::atomic::write_if_changed`] (the temporary file is created with mode 0600,
//! so no file is ever world-readable, even briefly).
//!
//! | file | content |
//! |---|---|
//! | `device.json` | [`Device`]: server, device id and credential, user, org, pinned CA |
//! | `ca.pem` | copy of the CA given to `enroll --ca-cert` |
//! | `policy.json` | [`CachedPolicy`]: the last good snapshot, applied at start before connecting |
//! | `api-key` | the Anthropic API key only, served by `palisade-agent api-key` |
//! | `status.json` | [`Status`]: what `run` is doing, for `palisade-agent status` |
//! | `wipe-pending.json` | [`PendingWipe`]: a wipe started and not yet recorded (finished at the next start) |
//!
//! The developer's own copy of the key, which the `apiKeyHelper` reads, lives outside
//! this directory (see [`crate::credentials::keyfile`]).
//!
//! On Windows the directory gets a protected access list for SYSTEM and Administrators only
//! (nothing inherited from `ProgramData`, which lets every user read), checked and put back
//! before every write (see [`crate::platform::acl`]).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::enforce::atomic::write_if_changed;
use crate::link::messages::{OfflineRule, TamperRecord, Warning, WipeRecord};
use palisade_policy::Policy;

/// `device.json`.
pub const DEVICE_FILE: &str = "device.json";
/// `policy.json`.
pub const POLICY_FILE: &str = "policy.json";
/// `api-key`.
pub const API_KEY_FILE: &str = "api-key";
/// The organisation's key while the relay keeps it (proxy delivery; `api-key` then holds the
/// developer's local token).
pub const UPSTREAM_KEY_FILE: &str = "upstream-key";
/// `status.json`.
pub const STATUS_FILE: &str = "status.json";
/// `ca.pem`.
pub const CA_FILE: &str = "ca.pem";
/// `wipe-pending.json`.
pub const WIPE_PENDING_FILE: &str = "wipe-pending.json";

/// Mode of every state file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the state directory.
pub const DIR_MODE: u32 = 0o700;

/// The enrollment: who this device is and where its control plane lives.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// gRPC endpoint, `https://host:port` (or `http://` on loopback).
    pub server_url: String,
    /// The server's id for this device.
    pub device_id: String,
    /// The secret sent as `authorization: Bearer <credential>`.
    pub device_credential: String,
    /// The user's userName.
    pub user_name: String,
    /// The organisation's slug.
    pub org: String,
    /// The only CA trusted for the server, when one was pinned.
    pub ca_cert_path: Option<PathBuf>,
    /// When `enroll` ran (Unix ms).
    pub enrolled_at_unix_ms: i64,
    /// Whether the person is proven; false after MDM enrollment until they confirm the device.
    /// (Files from before this field were enrolled by name only: the server decides.)
    #[serde(default = "verified_by_default")]
    pub verified: bool,
}

fn verified_by_default() -> bool {
    true
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("server_url", &self.server_url)
            .field("device_id", &self.device_id)
            .field("device_credential", &"<redacted>")
            .field("user_name", &self.user_name)
            .field("org", &self.org)
            .field("ca_cert_path", &self.ca_cert_path)
            .field("enrolled_at_unix_ms", &self.enrolled_at_unix_ms)
            .field("verified", &self.verified)
            .finish()
    }
}

/// The last good snapshot (without its API key, which lives in `api-key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPolicy {
    /// The device the snapshot was received by (a re-enrolled device starts from version 0).
    pub device_id: String,
    /// Snapshot version.
    pub version: u64,
    /// The policy (validated before it was saved).
    pub policy: Policy,
    /// The deadline as the server sent it (server clock).
    pub valid_until_unix_ms: Option<i64>,
    /// The deadline on this machine's clock (corrected by the skew seen in keepalives).
    pub offline_deadline_unix_ms: Option<i64>,
    /// What to do after the deadline.
    pub offline_rule: OfflineRule,
    /// The server's SHA-256 of the canonical policy.
    pub sha256: String,
    /// When it was applied (Unix ms).
    pub applied_at_unix_ms: i64,
    /// How the key reaches Claude Code.
    #[serde(default)]
    pub key_delivery: crate::link::messages::KeyDelivery,
    /// Where the relay forwards (`None`: the Anthropic API).
    #[serde(default)]
    pub upstream_url: Option<String>,
}

/// A wipe that was started: written before the first step and removed after the wipe was
/// recorded in `status.json`, so a crash in between is finished by the next start.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingWipe {
    /// Why (the server's reason, or the revocation).
    pub reason: String,
    /// The enrollment being wiped; a `device.json` of another device (enrolled after the
    /// crash) is kept.
    pub device_id: Option<String>,
    /// When the wipe started (Unix ms).
    pub started_at_unix_ms: i64,
}

/// What `run` is doing, for `palisade-agent status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// A policy stream is open.
    pub connected: bool,
    /// Last message from the control plane (Unix ms).
    pub last_contact_unix_ms: Option<i64>,
    /// Version of the policy on disk (0: none).
    pub applied_version: u64,
    /// The server's SHA-256 of that policy.
    pub policy_sha256: Option<String>,
    /// When the offline rule applies (local clock, Unix ms).
    pub offline_deadline_unix_ms: Option<i64>,
    /// The offline rule of the applied policy.
    pub offline_rule: Option<OfflineRule>,
    /// The deadline passed and the lockdown policy is on disk.
    pub offline_lockdown: bool,
    /// Last connection or apply error.
    pub last_error: Option<String>,
    /// Conditions an administrator should see.
    pub warnings: Vec<Warning>,
    /// The person has not confirmed this device yet (MDM enrollment): no API key is delivered.
    pub device_unverified: bool,
    /// Where the person confirms it (sign-in required), while unverified.
    pub confirm_url: Option<String>,
    /// Set by a wipe; cleared by the first snapshot after re-enrolling.
    pub wiped: Option<WipeRecord>,
    /// Last restored tamper event.
    pub last_tamper: Option<TamperRecord>,
    /// Tamper events restored since the state directory was created.
    pub tamper_count: u64,
    /// The key relay, while it runs: its address and what it does with a request.
    pub relay: Option<String>,
    /// Process id of the `run` that wrote this.
    pub pid: Option<u32>,
    /// When this was written (Unix ms).
    pub updated_at_unix_ms: i64,
}

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing or removing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not the JSON the agent wrote.
    #[error("{path}: corrupt state file: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl StateError {
    fn io(path: &Path, source: io::Error) -> StateError {
        StateError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// True when the error is a permission problem (a non-root user reading root's state).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, StateError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

/// The state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A handle; nothing is created until something is saved or [`StateDir::ensure`] runs.
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<name>`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the directory with mode 0700 if needed, and narrows a wider mode.
    pub fn ensure(&self) -> Result<(), StateError> {
        match fs::symlink_metadata(&self.root) {
            Ok(meta) if meta.is_dir() => fix_dir_mode(&self.root, &meta),
            Ok(_) => Err(StateError::io(
                &self.root,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&self.root).map_err(|e| StateError::io(&self.root, e))
            }
            Err(e) => Err(StateError::io(&self.root, e)),
        }
    }

    pub(crate) fn read_json<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StateError> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::io(&path, e)),
        }
    }

    pub(crate) fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        self.ensure()?;
        let path = self.path(name);
        write_if_changed(&path, bytes, FILE_MODE)
            .map(|_| ())
            .map_err(|e| StateError::io(&path, e))
    }

    pub(crate) fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Corrupt {
            path: self.path(name),
            source,
        })?;
        bytes.push(b'\n');
        self.write_bytes(name, &bytes)
    }

    /// Removes `<root>/<name>`; `Ok(false)` when it did not exist.
    pub fn remove(&self, name: &str) -> Result<bool, StateError> {
        remove_file(&self.path(name))
    }

    /// The enrollment, if any.
    pub fn load_device(&self) -> Result<Option<Device>, StateError> {
        self.read_json(DEVICE_FILE)
    }

    /// Saves the enrollment.
    pub fn save_device(&self, device: &Device) -> Result<(), StateError> {
        self.write_json(DEVICE_FILE, device)
    }

    /// The last good snapshot, if any.
    pub fn load_policy(&self) -> Result<Option<CachedPolicy>, StateError> {
        self.read_json(POLICY_FILE)
    }

    /// Saves the last good snapshot.
    pub fn save_policy(&self, cached: &CachedPolicy) -> Result<(), StateError> {
        self.write_json(POLICY_FILE, cached)
    }

    /// The API key; `None` when the file is absent or blank.
    pub fn load_api_key(&self) -> Result<Option<String>, StateError> {
        let path = self.path(API_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let key = text.trim();
                Ok((!key.is_empty()).then(|| key.to_owned()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::io(&path, e)),
        }
    }

    /// Saves the API key (the key only, no newline).
    pub fn save_api_key(&self, key: &str) -> Result<(), StateError> {
        self.write_bytes(API_KEY_FILE, key.trim().as_bytes())
    }

    /// The runtime status; a missing file gives the default.
    pub fn load_status(&self) -> Result<Status, StateError> {
        Ok(self.read_json(STATUS_FILE)?.unwrap_or_default())
    }

    /// Saves the runtime status.
    pub fn save_status(&self, status: &Status) -> Result<(), StateError> {
        self.write_json(STATUS_FILE, status)
    }

    /// The wipe in progress, if one was started and not recorded.
    pub fn load_pending_wipe(&self) -> Result<Option<PendingWipe>, StateError> {
        self.read_json(WIPE_PENDING_FILE)
    }

    /// Whether a wipe was started and not yet recorded (an unreadable marker counts).
    pub fn wipe_pending(&self) -> bool {
        fs::symlink_metadata(self.path(WIPE_PENDING_FILE)).is_ok()
    }

    /// Marks a wipe as started.
    pub fn save_pending_wipe(&self, pending: &PendingWipe) -> Result<(), StateError> {
        self.write_json(WIPE_PENDING_FILE, pending)
    }

    /// Saves a copy of the pinned CA and returns its path.
    pub fn save_ca(&self, pem: &[u8]) -> Result<PathBuf, StateError> {
        self.write_bytes(CA_FILE, pem)?;
        Ok(self.path(CA_FILE))
    }
}

/// Removes a file; `Ok(false)` when it did not exist.
pub fn remove_file(path: &Path) -> Result<bool, StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StateError::io(path, e)),
    }
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    // The umask may only have narrowed it, but make it exact.
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    crate::platform::acl::restrict(path, &crate::platform::acl::private_dir_sddl())
}

#[cfg(unix)]
fn fix_dir_mode(path: &Path, meta: &fs::Metadata) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o7777 == DIR_MODE {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| StateError::io(path, e))
}

/// Puts the SYSTEM and Administrators-only access list back when anyone else got in.
#[cfg(not(unix))]
fn fix_dir_mode(path: &Path, _meta: &fs::Metadata) -> Result<(), StateError> {
    crate::platform::acl::keep_private(path, &crate::platform::acl::private_dir_sddl())
        .map_err(|e| StateError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            server_url: "https://cp.example:50051".into(),
            device_id: "dev-1".into(),
            device_credential: "secret-credential".into(),
            user_name: "alice@example.com".into(),
            org: "acme".into(),
            ca_cert_path: None,
            enrolled_at_unix_ms: 1,
            verified: true,
        }
    }

    #[test]
    fn round_trips_every_file() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("state"));
        assert_eq!(state.load_device().unwrap(), None);
        assert_eq!(state.load_policy().unwrap(), None);
        assert_eq!(state.load_api_key().unwrap(), None);
        assert_eq!(state.load_status().unwrap(), Status::default());

        state.save_device(&device()).unwrap();
        assert_eq!(state.load_device().unwrap(), Some(device()));

        let cached = CachedPolicy {
            device_id: "dev-1".into(),
            version: 3,
            policy: {
                let mut p = Policy::new();
                p.set("security_level", serde_json::json!("strict"))
                    .unwrap();
                p
            },
            valid_until_unix_ms: Some(10),
            offline_deadline_unix_ms: Some(12),
            offline_rule: OfflineRule::Lockdown,
            sha256: "ab".into(),
            applied_at_unix_ms: 5,
            key_delivery: Default::default(),
            upstream_url: None,
        };
        state.save_policy(&cached).unwrap();
        assert_eq!(state.load_policy().unwrap(), Some(cached.clone()));

        // A cache written by a schema-1 agent still loads (migrated).
        let mut old = serde_json::to_value(&cached).unwrap();
        old["policy"] = serde_json::json!({"blocked_tools": ["Bash"], "security_level": "strict"});
        std::fs::write(state.path(POLICY_FILE), old.to_string()).unwrap();
        let loaded = state.load_policy().unwrap().unwrap();
        assert_eq!(
            loaded.policy.strings("permissions.deny"),
            Some(vec!["Bash"])
        );

        state.save_api_key("sk-ant-123\n").unwrap();
        assert_eq!(fs::read(state.path(API_KEY_FILE)).unwrap(), b"sk-ant-123");
        assert_eq!(state.load_api_key().unwrap().as_deref(), Some("sk-ant-123"));

        let status = Status {
            connected: true,
            applied_version: 3,
            ..Status::default()
        };
        state.save_status(&status).unwrap();
        assert_eq!(state.load_status().unwrap(), status);

        assert!(state.remove(API_KEY_FILE).unwrap());
        assert!(!state.remove(API_KEY_FILE).unwrap());
        assert_eq!(state.load_api_key().unwrap(), None);
    }

    #[test]
    fn device_debug_hides_the_credential() {
        let text = format!("{:?}", device());
        assert!(!text.contains("secret-credential"), "{text}");
        assert!(text.contains("dev-1"));
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        fs::write(state.path(DEVICE_FILE), b"{not json").unwrap();
        let err = state.load_device().unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }));
        assert!(err.to_string().contains(DEVICE_FILE), "{err}");
    }

    #[test]
    fn status_tolerates_missing_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        fs::write(state.path(STATUS_FILE), br#"{"connected": true}"#).unwrap();
        let status = state.load_status().unwrap();
        assert!(status.connected);
        assert_eq!(status.applied_version, 0);
    }

    #[cfg(unix)]
    #[test]
    fn directory_is_0700_and_files_0600() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a").join("state");
        let state = StateDir::new(&root);
        state.save_device(&device()).unwrap();
        state.save_api_key("k").unwrap();
        state.save_status(&Status::default()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root), 0o700);
        for name in [DEVICE_FILE, API_KEY_FILE, STATUS_FILE] {
            assert_eq!(mode(&state.path(name)), 0o600, "{name}");
        }

        // A wider directory mode is narrowed.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        state.ensure().unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        fs::write(&root, b"x").unwrap();
        assert!(StateDir::new(&root).ensure().is_err());
    }
}
