//! Storage layer of db-proxy: MySQL/MariaDB (diesel-async, two pools), Redis (four logical
//! instances behind [`Cache`]) and the msfs voice payload store. Knows nothing of
//! PDUs/protobuf.
//!
//! Embedding services connect a [`Store`] and call its domain handles: `store.users()`,
//! `store.messages()`, `store.sessions()`, `store.relations()`, `store.groups()`,
//! `store.counters()`, `store.tokens()`, `store.files()`, `store.audio()`,
//! `store.departments()`, `store.sync_state()`; or run statements of their own with
//! [`Store::master`], [`Store::slave`] and [`Store::master_tx`].
//!
//! # Layout
//!
//! Each layer uses only the layers below it:
//!
//! * `api` — the public handles above (one module per domain, re-exported at the root as
//!   [`message`], [`session`], [`user`], …). Each method names what it reads and writes and
//!   picks the pool (master or slave); it delegates to a repository function or a hot path.
//! * [`store`] — [`Store`]: the backends (pools, Redis instances, msfs, timeouts) and the
//!   hot paths; `connect` and the accessors. Knows no domain.
//! * `hot` — the coalesced hot paths (login, send lookup, message write, page reads, newest
//!   reads, groups of a user) and the remembered relation ids; `HotPaths` starts and wires
//!   every coalescer.
//! * `repo` — one module per domain: row types and the functions reading and writing its
//!   tables and keys. A function that touches MySQL takes one `DbPool` (a pool, or the
//!   caller's connection), so the same function runs alone or inside a transaction.
//! * `db` — pools and the bounded unit of work (`run`: pool wait, statement timeout,
//!   discard of failed connections), `DbPool`, named advisory locks, the schema migration,
//!   diesel tables, shard table names, prepared-statement helpers. `redis` — the [`Cache`]
//!   facade over fred, every key format ([`keys`]) and every Lua script. [`msfs`] — the
//!   HTTP client of the voice store. `batch` — the coalescing machinery (queue, slots,
//!   gate, fan-out), batched statement texts and stage timings; it knows no domain.
//! * `breaker` — the circuit breaker of each MySQL pool and Redis endpoint (fail at once while
//!   a backend is known to be down), used by `db` and `redis`.
//! * [`error`] and [`config`] — the one error type and the settings.

pub mod config;
pub mod error;
pub mod metrics;
pub mod msfs;
pub mod stages;
pub mod store;

mod api;
mod batch;
mod breaker;
mod db;
mod hot;
mod redis;
mod repo;

pub use api::{
    audio, department, doctor, file, group, lockout, message, relation, schema, session,
    sync_state, token, unread, user,
};
pub use batch::timing::StageTiming;
pub use config::{Batching, MysqlConfig, RedisConfig, StoreConfig, Timeouts};
pub use db::{unix_now, Db, DbConn, DbWork};
pub use error::{Error, MysqlResultExt, Result};
pub use redis::{keys, Cache, Script, ScriptValue};
pub use store::Store;

/// Names of the sharded message tables.
pub mod shard {
    pub use crate::db::shard::{group_message_table, message_table};
}
