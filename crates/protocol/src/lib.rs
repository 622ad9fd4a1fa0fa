//! The wire protocol of TeamTalk's db_proxy_server: generated protobuf messages.

/// Generated protobuf types, one module per `.proto` package (`IM.Message` → `pb::im::message`).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
}
