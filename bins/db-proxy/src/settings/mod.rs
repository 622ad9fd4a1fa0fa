//! Effective settings: built-in defaults ← config file (TOML or legacy `.conf`) ← environment.
//!
//! * this module: the settings types, typed as what they mean (ports `u16`, addresses
//!   `IpAddr`, timings `Duration`); their defaults are the library crates' defaults, so there
//!   is one source for each;
//! * [`check`]: the value checks run while deserializing, so a bad value fails with one line
//!   naming its key;
//! * [`load`]: layering of the sources and error reporting;
//! * [`convert`]: each crate's own configuration built from the settings.
//!
//! Environment overrides: `DBPROXY__<SECTION>__<KEY>` (double underscores; names are
//! case-insensitive), e.g. `DBPROXY__SERVER__PORT=10601`, `DBPROXY__MYSQL__MASTER__HOST=db1`,
//! `DBPROXY__REDIS__GROUP_MEMBER__DB=5`, `DBPROXY__SERVER__LISTEN=127.0.0.1;::1`.

mod check;
mod convert;
mod load;

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{load, load_with_env, Error, Loaded, SourceKind, ENV_PREFIX, LEGACY_DEFAULT_FILE};

/// All settings of the process.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listener, worker threads, msfs, AES key.
    pub server: ServerSettings,
    /// MySQL / MariaDB pools.
    pub mysql: MysqlSettings,
    /// Redis instances.
    pub redis: RedisSettings,
    /// Connection limits, protocol timings, backend timeouts.
    pub limits: Limits,
    /// Logging.
    pub log: LogSettings,
    /// Prometheus metrics and health endpoints.
    pub metrics: MetricsSettings,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address (`ip:port`) of the HTTP listener serving `/metrics`, `/healthz` and
    /// `/readyz`; empty = no listener (legacy `MetricsListen`, a key the original ignores).
    #[serde(deserialize_with = "check::socket_addr_or_empty")]
    pub listen: String,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen addresses (IP literals). Also accepts one string split on `;` or `,`.
    #[serde(deserialize_with = "check::listen")]
    pub listen: Vec<IpAddr>,
    /// TCP port for every listen address.
    #[serde(deserialize_with = "check::port")]
    pub port: u16,
    /// Tokio worker threads (legacy `ThreadNum`), 1-1024; 1 = tokio's current-thread runtime.
    #[serde(deserialize_with = "check::threads")]
    pub threads: usize,
    /// Base URL of the msfs file server (voice messages).
    #[serde(deserialize_with = "check::non_empty")]
    pub msfs_url: String,
    /// AES key, exactly 32 bytes (must equal msg_server's).
    #[serde(deserialize_with = "check::aes_key")]
    pub aes_key: String,
    /// Write the decimal pid to this file after start-up; empty = no pid file.
    pub pid_file: String,
}

/// `[mysql]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlSettings {
    /// Writes (legacy `teamtalk_master`).
    pub master: MysqlInstance,
    /// Most reads (legacy `teamtalk_slave`).
    pub slave: MysqlInstance,
}

/// One MySQL pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlInstance {
    /// Host name or IP.
    #[serde(deserialize_with = "check::non_empty")]
    pub host: String,
    /// TCP port.
    #[serde(deserialize_with = "check::port")]
    pub port: u16,
    /// Schema name.
    #[serde(deserialize_with = "check::not_empty")]
    pub database: String,
    /// User.
    #[serde(deserialize_with = "check::not_empty")]
    pub user: String,
    /// Password.
    pub password: String,
    /// Pool upper bound, 1-10000.
    #[serde(deserialize_with = "check::pool_size")]
    pub max_connections: usize,
    /// Unix socket path; when non-empty it is used instead of host/port.
    pub socket: String,
}

/// `[redis]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Unread counters, message id counters.
    pub unread: RedisInstance,
    /// Group push-shield settings.
    pub group_set: RedisInstance,
    /// Device tokens.
    pub token: RedisInstance,
    /// Group member hashes.
    pub group_member: RedisInstance,
    /// Accepted and ignored (the original configured but never used it, quirk Q-R07); not
    /// shown by `--check-config`, which prints only what db-proxy uses.
    #[serde(skip_serializing)]
    pub sync: IgnoredInstance,
}

/// One Redis instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisInstance {
    /// Host name or IP.
    #[serde(deserialize_with = "check::non_empty")]
    pub host: String,
    /// TCP port.
    #[serde(deserialize_with = "check::port")]
    pub port: u16,
    /// Logical database selected after connect, 0-15.
    #[serde(deserialize_with = "check::redis_db")]
    pub db: u8,
    /// Pool upper bound, 1-10000.
    #[serde(deserialize_with = "check::pool_size")]
    pub max_connections: usize,
    /// Redis Sentinel: `host:port` of each sentinel; the instance is then the current master
    /// of `sentinel_service` (`host` and `port` unused). Empty: `host:port` directly.
    #[serde(deserialize_with = "check::host_ports")]
    pub sentinels: Vec<String>,
    /// The master name the sentinels monitor (required with `sentinels`).
    pub sentinel_service: String,
    /// After each msgId allocation wait until this many replicas have it (Redis `WAIT`), so
    /// a failover cannot hand msgIds out again; 0 (the default) does not wait.
    pub replica_acks: u32,
    /// The longest such a wait, ms.
    pub replica_ack_wait_ms: u64,
}

/// The `sync` instance: read without any check, never used.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct IgnoredInstance {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: i64,
    /// Logical database.
    pub db: i64,
    /// Pool upper bound.
    pub max_connections: i64,
}

/// `[limits]`. Timings are written in milliseconds (the `_ms` keys).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted PDU (total length incl. the 16-byte header), bytes.
    #[serde(deserialize_with = "check::frame_bytes")]
    pub max_frame_bytes: usize,
    /// Concurrent peer connections.
    #[serde(deserialize_with = "check::positive")]
    pub max_connections: usize,
    /// Requests processed concurrently per connection (more wait: backpressure).
    #[serde(deserialize_with = "check::positive")]
    pub max_in_flight_per_connection: usize,
    /// Reply bytes one connection may hold undelivered before reading from it pauses.
    #[serde(deserialize_with = "check::positive")]
    pub max_reply_bytes_per_connection: usize,
    /// Reply bytes all connections together may hold undelivered before reading pauses.
    #[serde(deserialize_with = "check::positive")]
    pub max_reply_bytes_total: usize,
    /// Send a heartbeat after this long without sending.
    #[serde(rename = "heartbeat_ms", with = "check::millis")]
    pub heartbeat: Duration,
    /// Close a connection after this long without receiving.
    #[serde(rename = "idle_timeout_ms", with = "check::millis")]
    pub idle_timeout: Duration,
    /// Grace after SIGTERM/SIGINT before exit.
    #[serde(rename = "shutdown_grace_ms", with = "check::millis")]
    pub shutdown_grace: Duration,
    /// One MySQL unit of work (all statements of one call).
    #[serde(rename = "mysql_timeout_ms", with = "check::millis")]
    pub mysql_timeout: Duration,
    /// Wait for a pooled MySQL connection.
    #[serde(rename = "mysql_pool_wait_ms", with = "check::millis")]
    pub mysql_pool_wait: Duration,
    /// How long a message write with an unknown outcome keeps asking whether it was stored.
    #[serde(rename = "mysql_outcome_check_ms", with = "check::millis")]
    pub mysql_outcome_check: Duration,
    /// One Redis command.
    #[serde(rename = "redis_timeout_ms", with = "check::millis")]
    pub redis_timeout: Duration,
    /// One msfs HTTP call (upload and download).
    #[serde(rename = "msfs_timeout_ms", with = "check::millis")]
    pub msfs_timeout: Duration,
    /// Opening a MySQL or Redis connection.
    #[serde(rename = "connect_timeout_ms", with = "check::millis")]
    pub connect_timeout: Duration,
    /// Close a connection whose peer has not taken a reply for this long.
    #[serde(rename = "write_timeout_ms", with = "check::millis")]
    pub write_timeout: Duration,
    /// Log a request that takes at least this long (a WARN line); 0 logs every request.
    #[serde(rename = "slow_request_ms", with = "check::millis_or_zero")]
    pub slow_request: Duration,
    /// Verify (`SELECT 1`) a pooled MySQL connection on checkout only when it has been idle
    /// longer than this; 0 verifies on every checkout.
    #[serde(rename = "mysql_verify_idle_ms", with = "check::millis_or_zero")]
    pub mysql_verify_idle: Duration,
    /// Most concurrent hot-path calls (logins, send lookups, message writes, fetches, newest
    /// messages) coalesced into one statement or transaction, 1-32; 1 turns coalescing off.
    #[serde(deserialize_with = "check::batch_size")]
    pub batch_max: usize,
    /// Most sends coalesced into one send lookup and one message transaction, 1-32.
    #[serde(deserialize_with = "check::batch_size")]
    pub batch_write_max: usize,
    /// Coalesced read batches of one kind running at once (each on one MySQL connection).
    #[serde(deserialize_with = "check::slots")]
    pub batch_read_slots: usize,
    /// Coalesced message-write transactions running at once (each on one master connection).
    #[serde(deserialize_with = "check::slots")]
    pub batch_write_slots: usize,
    /// How long a user pair's relation id, once read or created, serves message lists and
    /// newest-message reads without a new `IMRelationShip` lookup; 0 always looks up.
    #[serde(rename = "relation_cache_ms", with = "check::millis_or_zero")]
    pub relation_cache: Duration,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// tracing filter directive (`info`, `db_proxy=debug,info`...); `RUST_LOG` wins when set.
    #[serde(deserialize_with = "check::log_level")]
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

// Defaults: every value that a library crate has a default for is taken from there.

impl Default for ServerSettings {
    fn default() -> Self {
        let transport = dbproxy_transport::ServerConfig::default();
        Self {
            listen: transport.listen.iter().map(|a| a.ip()).collect(),
            port: transport.listen.first().map_or(10600, |a| a.port()),
            threads: 1,
            msfs_url: dbproxy_model::StoreConfig::default().msfs_url,
            aes_key: String::from_utf8_lossy(&dbproxy_action::ActionSettings::default().aes_key)
                .into_owned(),
            pid_file: String::new(),
        }
    }
}

impl From<dbproxy_model::MysqlConfig> for MysqlInstance {
    fn from(m: dbproxy_model::MysqlConfig) -> Self {
        Self {
            host: m.host,
            port: m.port,
            database: m.database,
            user: m.user,
            password: m.password,
            max_connections: m.max_connections,
            socket: m.socket.unwrap_or_default(),
        }
    }
}

impl Default for MysqlInstance {
    fn default() -> Self {
        dbproxy_model::MysqlConfig::default().into()
    }
}

impl From<dbproxy_model::RedisConfig> for RedisInstance {
    fn from(r: dbproxy_model::RedisConfig) -> Self {
        Self {
            host: r.host,
            port: r.port,
            db: r.db,
            max_connections: r.max_connections,
            sentinels: r.sentinels,
            sentinel_service: r.sentinel_service,
            replica_acks: r.replica_acks,
            replica_ack_wait_ms: u64::try_from(r.replica_ack_wait.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Default for RedisInstance {
    fn default() -> Self {
        dbproxy_model::RedisConfig::default().into()
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        let m = dbproxy_model::StoreConfig::default();
        Self {
            unread: m.unread.into(),
            group_set: m.group_set.into(),
            token: m.token.into(),
            group_member: m.group_member.into(),
            // The original's shipped values for the instance it never used.
            sync: IgnoredInstance {
                host: "127.0.0.1".into(),
                port: 6379,
                db: 2,
                max_connections: 1,
            },
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let t = dbproxy_transport::ServerConfig::default();
        let m = dbproxy_model::StoreConfig::default();
        Self {
            max_frame_bytes: t.max_frame_len,
            max_connections: t.max_connections,
            max_in_flight_per_connection: t.max_in_flight_per_connection,
            max_reply_bytes_per_connection: t.max_reply_bytes_per_connection,
            max_reply_bytes_total: t.max_reply_bytes_total,
            heartbeat: t.heartbeat_interval,
            idle_timeout: t.idle_timeout,
            shutdown_grace: t.shutdown_grace,
            mysql_timeout: m.timeouts.statement,
            mysql_pool_wait: m.timeouts.pool_wait,
            mysql_outcome_check: m.timeouts.outcome_check,
            redis_timeout: m.timeouts.redis_command,
            msfs_timeout: m.timeouts.msfs_upload,
            connect_timeout: m.timeouts.connect,
            write_timeout: t.write_timeout,
            slow_request: dbproxy_action::ActionSettings::default().slow_request,
            mysql_verify_idle: m.timeouts.pool_verify_idle,
            batch_max: m.batch.max_batch,
            batch_write_max: m.batch.write_max_batch,
            batch_read_slots: m.batch.read_slots,
            batch_write_slots: m.batch.write_slots,
            relation_cache: m.relation_ids_ttl,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl RedisSettings {
    /// The four instances the handlers use, with their names (`sync` excluded, Q-R07).
    pub fn required(&self) -> [(&'static str, &RedisInstance); 4] {
        [
            ("unread", &self.unread),
            ("group_set", &self.group_set),
            ("token", &self.token),
            ("group_member", &self.group_member),
        ]
    }
}

impl MysqlInstance {
    /// `host:port`.
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl RedisInstance {
    /// `host:port`.
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

const MASK: &str = "********";

impl Settings {
    /// Copy with passwords and the AES key replaced by a mask.
    pub fn masked(&self) -> Settings {
        let mut s = self.clone();
        s.server.aes_key = MASK.into();
        s.mysql.master.password = MASK.into();
        s.mysql.slave.password = MASK.into();
        s
    }

    /// Effective settings as TOML, secrets masked (for `--check-config`).
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(&self.masked())
            .unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}
