//! One repository module per domain: its row types and the functions that read and write
//! its tables and keys. Every function that touches MySQL takes one [`crate::db::DbPool`], so
//! it runs on a pool or inside a caller's connection (transaction, lock, batch) alike.

pub(crate) mod audio;
pub(crate) mod department;
pub(crate) mod file;
pub(crate) mod group;
pub(crate) mod lockout;
pub(crate) mod message;
pub(crate) mod relation;
pub(crate) mod session;
pub(crate) mod sync_state;
pub(crate) mod token;
pub(crate) mod unread;
pub(crate) mod user;
