//! Palisade control plane: a SCIM 2.0 service provider for identity providers, the store behind
//! it, the policy engine, the gRPC policy stream to workstation agents, and the web pages where
//! people sign in with their IdP to enroll their devices.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod crypto;
pub mod distribution;
pub mod domain;
pub mod grpc;
pub mod mail;
pub mod roles;
pub mod scim;
pub mod secrets_key;
pub mod store;
pub mod web;
