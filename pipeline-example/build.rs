//! Compiles `proto/*.proto` into one encoded descriptor set with a pure-Rust protobuf compiler
//! (no protoc to install); the event loads decode messages by it.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let set = protox::compile(["shop.proto"], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("shop.bin");
    std::fs::write(out, prost::Message::encode_to_vec(&set))?;
    Ok(())
}
