//! The integration tests of dbproxy-model, in one test binary (linked once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod coalesced;
mod concurrency;
mod doctor;
mod group;
mod infra;
mod message_audio;
mod optional_indexes;
mod token_file;
