//! The short-lived subcommands: `enroll` ([`enroll`]), `status` ([`status`]) and `api-key`
//! ([`api_key`]). `run` lives in [`crate::run`].

pub mod api_key;
pub mod enroll;
pub mod status;
