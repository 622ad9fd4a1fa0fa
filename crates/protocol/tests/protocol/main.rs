//! The protocol crate from outside: framing, the command table, strict decoding, byte
//! vectors and the client, in one test binary (linked once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod codec;
mod commands;
mod properties;
mod strict;
mod vectors;
