//! Compiles `proto/*.proto` with protox (pure Rust, no system `protoc`) and prost-build.
//! The encoded descriptor set is kept in OUT_DIR so the crate can apply the proto2
//! required-field and enum rules of the original at run time.

use std::fmt::Write as _;
use std::path::PathBuf;

use heck::ToUpperCamelCase;

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
    std::fs::write(out_dir.join("ids.rs"), id_constants(&descriptors)?)?;
    prost_build::Config::new()
        .bytes(["."])
        .enable_type_names()
        .include_file("_includes.rs")
        .compile_fds(descriptors)?;
    Ok(())
}

/// `sid` and `cid` constants for every value of `IM.BaseDefine.ServiceID` and of every
/// `*CmdID` enum, each defined as the prost-generated variant cast to u16 (so the numbers
/// come from the .proto files, and a renamed variant fails to compile). Names drop the
/// `SID_` / `CID_` prefix.
fn id_constants(
    fds: &prost_types::FileDescriptorSet,
) -> Result<String, Box<dyn std::error::Error>> {
    let base = fds
        .file
        .iter()
        .find(|f| f.package() == "IM.BaseDefine")
        .ok_or("IM.BaseDefine not compiled")?;
    let mut sids = String::new();
    let mut cids = String::new();
    let mut names = String::new();
    for e in &base.enum_type {
        let rust_enum = e.name().to_upper_camel_case();
        let (out, prefix) = if e.name() == "ServiceID" {
            (&mut sids, "SID_")
        } else if e.name().ends_with("CmdID") {
            (&mut cids, "CID_")
        } else {
            continue;
        };
        for v in &e.value {
            let Some(short) = v.name().strip_prefix(prefix) else {
                return Err(format!("{}.{} lacks the {prefix} prefix", e.name(), v.name()).into());
            };
            writeln!(
                out,
                "/// `{}` (IM.BaseDefine.{}).\npub const {short}: u16 = \
                 crate::pb::im::base_define::{rust_enum}::{} as u16;",
                v.name(),
                e.name(),
                v.name().to_upper_camel_case()
            )?;
            if prefix == "CID_" {
                writeln!(names, "        {short} => \"{}\",", v.name())?;
            }
        }
    }
    Ok(format!(
        "/// Service ids (`IM.BaseDefine.ServiceID`).\npub mod sid {{\n{sids}}}\n\n\
         /// Command ids of every `*CmdID` enum of `IM.BaseDefine`.\npub mod cid {{\n{cids}\n\
         /// Enum name of a command id (`CID_...`); empty for an undeclared id.\n\
         pub const fn name(id: u16) -> &'static str {{\n    match id {{\n{names}        \
         _ => \"\",\n    }}\n}}\n}}\n"
    ))
}
