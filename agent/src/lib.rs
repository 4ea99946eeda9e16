//! Palisade workstation agent: turns the effective policy the control plane streams for this
//! user into Claude Code managed settings on disk.
//!
//! - [`policy`]: the agent's plain policy type ([`Policy`], [`SecurityLevel`]) and its
//!   validation.
//! - [`settings`]: renders a policy into the agent's own drop-in file,
//!   `managed-settings.d/50-palisade.json`, deterministically (see `SETTINGS.md` for what each
//!   field becomes and what a user could still do).
//! - [`atomic`]: crash-safe, change-only file replacement (temp file, fsync, rename, fsync of
//!   the directory).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod atomic;
pub mod policy;
pub mod settings;

pub use policy::{Policy, PolicyError, SecurityLevel};
pub use settings::{render, render_bytes, RenderOptions, TargetOs};
