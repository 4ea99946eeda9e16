//! Generated protobuf and gRPC types for the Palisade agent protocol (`palisade.v1`). Only the
//! gRPC edges (the control plane's `grpc/` module and the agent's stream client) use them;
//! everything else works with plain domain types.

/// Version 1 of the agent protocol.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("palisade.v1");
}

/// Metadata trailer that marks a refused stream as "this device was revoked: wipe".
pub const DEVICE_STATUS_TRAILER: &str = "palisade-device-status";
/// Value of [`DEVICE_STATUS_TRAILER`] for a revoked device.
pub const DEVICE_REVOKED: &str = "revoked";
