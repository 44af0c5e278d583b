//! Transports: gRPC and HTTP/JSON. Each decodes its wire types into domain values, calls
//! [`crate::gate::Gate`], and encodes the answer. No deciding happens here.
//!
//! Architecture invariant: nothing under `api` constructs a `Verdict` from evidence or reads the
//! store; it only translates.

pub mod grpc;
pub mod http;
pub mod view;
