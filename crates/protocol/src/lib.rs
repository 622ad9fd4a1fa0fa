//! The wire protocol of TeamTalk's db_proxy_server: PDU framing, the command table,
//! proto2-strict decoding of the generated protobuf messages, and an async client.

pub mod client;
pub mod codec;
pub mod commands;
pub mod decode;
mod error;
mod ids;
mod schema;
pub mod wire;

pub use client::{Client, ClientOptions};
pub use codec::{Pdu, PduCodec, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
pub use commands::{cid, cmd, lookup, sid, Command, CommandInfo, COMMANDS};
pub use decode::decode;
pub use error::{Error, Result};

/// Generated protobuf types, one module per `.proto` package (`IM.Message` → `pb::im::message`).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
}
