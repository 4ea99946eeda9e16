//! Platform specifics: Windows access lists ([`acl`]) and the Windows service ([`service`]),
//! the only modules allowed `unsafe` (Win32 calls, on Windows only); the developer's
//! `~/.claude` opened without following symlinks (`userdir`, Unix only).

pub mod acl;
pub mod service;
#[cfg(unix)]
pub mod userdir;
