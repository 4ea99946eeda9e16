//! Palisade's policy model, written once and used by the control plane and the agent alike:
//!
//! - [`keys`]: the one table of policy keys — kind, merge rule, who may set it, what it renders;
//! - [`rules`]: the syntax of each kind of entry (permission rules, paths, domains, MCP
//!   matchers, models, versions, ...), each giving a canonical spelling;
//! - [`Policy`] ([`document`]): checked, canonical key values, its JSON form, the wire form;
//! - [`parse_policy`]: JSON and TOML policy files, every problem at once ([`migrate`]: v1);
//! - [`effective`] / [`explain`] ([`merge`]): org defaults overlaid with every group's policy
//!   and the security level's bundle ([`level`], [`bundles`], also [`lockdown`]);
//! - [`render()`]: the Claude Code managed-settings drop-in file.
//!
//! **Invariant: this crate is pure.** No I/O, no clock, no randomness, no async, no tonic, no
//! sqlx: every function is a deterministic function of its arguments.

#![forbid(unsafe_code)]

pub mod bundles;
pub mod document;
pub mod error;
pub mod keys;
pub mod level;
pub mod merge;
pub mod migrate;
pub mod parse;
pub mod render;
pub mod rules;
pub mod value;

pub use bundles::{bundle, denies_every_tool, lockdown};
pub use document::{Loaded, Policy, Scope};
pub use error::{PolicyError, PolicyErrors, PolicyFormat, UnsupportedFormat};
pub use level::{ParseLevelError, SecurityLevel};
pub use merge::{effective, explain, Explanation, GroupPolicy, KeyExplanation, Source};
pub use parse::parse_policy;
pub use render::{inapplicable_paths, render, render_bytes, RenderOptions, TargetOs};

/// The policy schema this build reads and writes. Version 1 had six flat fields; version 2 is
/// the key table of [`keys`]. An agent refuses a policy with a newer schema or a key it does
/// not know.
pub const SCHEMA_VERSION: u32 = 2;

/// The Claude Code version whose managed-settings reference the rendering targets.
pub const CLAUDE_CODE_REFERENCE_VERSION: &str = "2.1.332";
