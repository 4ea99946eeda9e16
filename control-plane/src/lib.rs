//! Palisade control plane: a SCIM 2.0 service provider for identity providers, the store behind
//! it, and (next) the policy engine and the gRPC policy stream to workstation agents.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod crypto;
pub mod distribution;
pub mod domain;
pub mod grpc;
pub mod policy;
pub mod scim;
pub mod store;
