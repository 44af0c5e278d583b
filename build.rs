//! Generates the gRPC types from `proto/` with a pure-Rust protobuf compiler (protox), so a fresh
//! machine builds with cargo alone: no system `protoc`.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/portcullis/v1/gate.proto";
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds these at compile time; a new migration must trigger a rebuild.
    println!("cargo:rerun-if-changed=src/store/migrations");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // The encoded descriptor set feeds gRPC server reflection.
    std::fs::write(out.join("portcullis_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Decode failures are INVALID_ARGUMENT, not prost's INTERNAL (src/api/grpc/codec.rs).
        .codec_path("crate::api::grpc::codec::Codec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
