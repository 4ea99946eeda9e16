//! The gRPC edge for agents (`palisade.v1.AgentService`): enrollment and the policy stream.
//! The only layer, with `convert.rs`, that sees generated protobuf types.

mod convert;
mod enroll;
mod progress;
mod service;

pub use enroll::ENROLL_REFUSED;
pub use service::{AgentGrpc, StreamSettings};
