//! Generates the gRPC server and client from `proto/`. The .proto files
//! are compiled by protox, in Rust, so no `protoc` needs installing on any
//! machine that builds this.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["boxoffice/reservation/v1/reservations.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The client is what Rust callers (and the end-to-end tests) use.
        .build_client(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
