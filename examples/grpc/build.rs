//! Generates the gRPC code from `proto/ratings.proto` (needs `protoc`:
//! Debian's protobuf-compiler, which `make deps` installs). Without tonic's
//! own transport: the client's channel is Beacon, the server is axum.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_protos(&["proto/ratings.proto"], &["proto"])?;
    Ok(())
}
