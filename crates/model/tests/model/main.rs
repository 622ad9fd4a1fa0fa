//! The integration tests of dbproxy-model, in one test binary (linked once).

mod batch;
mod coalesced;
mod concurrency;
mod group;
mod infra;
mod message_audio;
mod token_file;
