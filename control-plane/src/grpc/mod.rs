//! The gRPC edge for agents (`palisade.v1.AgentService`): enrollment and the policy stream.
//! The only layer, with `convert.rs`, that sees generated protobuf types.

mod convert;
mod progress;
mod service;

pub use service::{AgentGrpc, StreamSettings};
