//! Compiles `biomatch/v1/*.proto` with a vendored `protoc`, so that a machine
//! with only the Rust toolchain can build the workspace.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "biomatch/v1/template.proto",
        "biomatch/v1/matcher.proto",
        "biomatch/v1/jobs.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("biomatch_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
