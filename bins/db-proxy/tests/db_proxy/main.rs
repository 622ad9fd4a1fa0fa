//! The db-proxy binary and server end to end, over the real protocol against MariaDB and
//! Redis, in one test binary (linked once; each module was a binary of its own before).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod raw;

mod chaos;
mod config;
mod docs;
mod doctor;
mod e2e_bytes;
mod e2e_group_token_file;
mod e2e_login_buddy;
mod e2e_malformed;
mod e2e_message;
mod e2e_outage;
mod instances;
mod replication;
mod sentinel;
mod shutdown;
mod telemetry;
