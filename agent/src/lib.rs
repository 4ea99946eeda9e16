//! Palisade workstation agent: turns the effective policy the control plane streams for this
//! user into Claude Code managed settings on disk, serves the API key, undoes tampering and
//! wipes credentials on deprovisioning.
//!
//! Policy and rendering are the `palisade-policy` crate's ([`Policy`], [`render`]): the agent
//! renders what it receives with the code the control plane previews it with (see
//! `SETTINGS.md` for what each key becomes and what a user could still do).
//!
//! The folders are the agent's parts:
//! - [`link`]: the link to the control plane.
//!   - [`link::messages`]: the policy stream's messages as plain types (pure).
//!   - [`link::grpc`]: the only module that knows protobuf and tonic (conversions, TLS
//!     channel, `Enroll`, `StreamPolicy`).
//!   - [`link::backoff`]: reconnection delays with full jitter.
//!   - [`link::install_key`]: the machine's installation key, for idempotent re-enrollment.
//! - [`enforce`]: enforcement on disk; keeps the drop-in equal to the enforced policy and
//!   restores it.
//!   - [`enforce::atomic`]: crash-safe, change-only file replacement (temp file, fsync,
//!     rename, fsync of the directory).
//!   - [`enforce::watch`]: `notify` watches (tamper, enrollment).
//!   - [`enforce::sources`]: higher-precedence managed sources and other warnings.
//! - [`credentials`]: what the agent hands out and takes back.
//!   - [`credentials::keyfile`]: the developer's copy of the API key the `apiKeyHelper`
//!     reads.
//!   - [`credentials::wipe`]: what deprovisioning removes.
//! - [`platform`]: platform specifics.
//!   - [`platform::acl`]: Windows access lists (SDDL) for the state directory and the key
//!     files.
//!   - [`platform::service`]: the run loop as a Windows service.
//!   - `platform::userdir` (Unix): the developer's `~/.claude`, opened by root without
//!     following a symlink, and the files in it.
//! - [`state`]: the 0700 state directory (`device.json`, `policy.json`, `api-key`,
//!   `status.json`); every part above and the commands use it, so it stays at the top.
//!
//! Commands:
//! - [`cli`] and [`config`]: the command line and where things are.
//! - [`run`]: the long-lived loop; [`commands`]: `enroll`, `status`, `api-key`.
// Only `platform::acl`'s Win32 calls and `platform::service`'s FFI entry point need `unsafe`,
// and only on Windows.
#![cfg_attr(not(windows), forbid(unsafe_code))]
#![cfg_attr(windows, deny(unsafe_code))]
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod enforce;
pub mod link;
pub mod platform;
pub mod relay;
pub mod run;
pub mod state;

pub use commands::api_key::{api_key_file_helper_command, api_key_helper_command, helper_for};
pub use palisade_policy::{
    lockdown, render, render_bytes, Policy, RenderOptions, SecurityLevel, TargetOs,
};

/// Milliseconds since the Unix epoch on this machine's clock (0 if the clock is before 1970).
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
