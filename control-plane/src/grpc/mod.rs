//! The gRPC edge for agents (`palisade.v1.AgentService`): enrollment and the policy stream.
//! The only layer, with `convert.rs`, that sees generated protobuf types.

mod convert;
pub mod limits;
mod progress;
mod reports;
mod service;

pub use limits::GrpcLimits;
pub use service::{AgentGrpc, StreamSettings};
