//! Compiles the test `.proto` files with a pure-Rust compiler (no protoc) into one encoded
//! descriptor set, which the event-load tests decode their messages by.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "events_v1.proto",
        "events_v2.proto",
        "events_v3.proto",
        "events_v4.proto",
    ];
    let set = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("events.bin");
    std::fs::write(out, prost::Message::encode_to_vec(&set))?;
    Ok(())
}
