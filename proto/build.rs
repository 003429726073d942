//! Compiles every .proto of the workspace with a vendored protoc, so a machine
//! with only cargo can build (honours $PROTOC when set).

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "csi/v1/csi.proto",
    "rds/common/v1/common.proto",
    "rds/agent/v1/agent.proto",
    "rds/attachment/v1/attachment.proto",
    "rds/event/v1/event.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    for p in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let protoc = match std::env::var_os("PROTOC") {
        Some(p) => PathBuf::from(p),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let wkt = protoc_bin_vendored::include_path()?;
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("rds_descriptor.bin"))
        .compile_with_config(config, &protos, &[root, wkt])?;
    Ok(())
}
