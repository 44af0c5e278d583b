//! Code generated from `proto/portcullis/v1/gate.proto` by `build.rs`. Used only by `api::grpc`
//! and `client`.

#![allow(clippy::all, reason = "generated code")]
#![allow(unreachable_pub, reason = "generated code")]
#![allow(clippy::allow_attributes_without_reason, reason = "generated code")]

tonic::include_proto!("portcullis.v1");

/// Encoded descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/portcullis_descriptor.bin"));
