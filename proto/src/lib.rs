//! Generated protobuf and gRPC types for the Palisade agent protocol (`palisade.v1`); filled by the policy-stream work.
