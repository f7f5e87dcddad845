//! Compiles proto/ with protox (pure Rust), so building needs no protoc on the machine; tonic's
//! generator adds the gRPC client and server for the services declared there.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        root.join("medledger/v1/events.proto"),
        root.join("medledger/v1/access.proto"),
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
