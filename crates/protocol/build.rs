//! Compiles `proto/*.proto` with protox (pure Rust, no system `protoc`) and prost-build.
//! The encoded descriptor set is kept in OUT_DIR so the crate can apply the proto2
//! required-field and enum rules of the original at run time.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "IM.BaseDefine.proto",
        "IM.Login.proto",
        "IM.Buddy.proto",
        "IM.Message.proto",
        "IM.Group.proto",
        "IM.File.proto",
        "IM.Other.proto",
        "IM.Server.proto",
        "IM.SwitchService.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_dir.join(file).display());
    }
    let descriptors = protox::compile(files, [&proto_dir])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    prost_build::Config::new()
        .bytes(["."])
        .enable_type_names()
        .include_file("_includes.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
