//! The gRPC edge for agents (`palisade.v1.AgentService`): enrollment and the policy stream.
//! The only layer, with `convert.rs`, that sees generated protobuf types.

mod convert;
mod enroll;
pub mod limits;
mod progress;
mod reports;
mod service;
mod usage;

pub use enroll::ENROLL_REFUSED;
pub use limits::GrpcLimits;
pub use service::{AgentGrpc, StreamSettings};
