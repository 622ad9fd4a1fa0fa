//! Storage layer of db-proxy: MySQL/MariaDB (diesel-async, two pools), Redis (behind
//! [`cache::Cache`]) and the msfs voice payload store. Knows nothing of PDUs/protobuf.
//!
//! Shared pieces: [`Store`] (backends + bounded units of work), [`cache::Cache`] (Redis
//! facade), [`error::Error`], [`shard`] (message table names), [`schema::migrate`].

pub mod cache;
pub mod config;
pub mod error;
pub mod schema;
pub mod shard;
pub mod sql;
pub mod store;

pub use cache::{Cache, Script, ScriptValue};
pub use config::{Batching, MysqlConfig, RedisConfig, StoreConfig, Timeouts};
pub use error::{Error, MysqlResultExt, Result};
pub use store::{unix_now, Db, DbConn, DbWork, Store};
pub use timing::StageTiming;

pub mod audio;
mod batch;
pub mod department;
pub mod file;
pub mod group;
pub mod message;
pub mod msfs;
pub mod named_lock;
pub mod relation;
pub mod session;
pub mod sync_state;
pub mod tables;
mod timing;
pub mod token;
pub mod unread;
pub mod user;
