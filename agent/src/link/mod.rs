//! The link to the control plane: the policy stream's messages as plain types
//! ([`messages`]), the gRPC edge that carries them ([`grpc`], the only module that knows
//! protobuf and tonic), reconnection delays ([`backoff`]) and the installation key sent with
//! every enrollment ([`install_key`]). The run loop's connection state is `run/link.rs`.

pub mod backoff;
pub mod grpc;
pub mod install_key;
pub mod messages;
