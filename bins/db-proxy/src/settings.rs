//! Effective settings: built-in defaults ← config file (TOML or legacy `.conf`) ← environment.
//!
//! Environment overrides: `DBPROXY__<SECTION>__<KEY>` (double underscores; names are
//! case-insensitive), e.g. `DBPROXY__SERVER__PORT=10601`, `DBPROXY__MYSQL__MASTER__HOST=db1`,
//! `DBPROXY__REDIS__GROUP_MEMBER__DB=5`, `DBPROXY__SERVER__LISTEN=127.0.0.1;::1`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Deserializer, Serialize};

use crate::legacy::{self, LegacyFormat};

/// Default legacy file looked up in the working directory when no `--config` is given.
pub const LEGACY_DEFAULT_FILE: &str = "dbproxyserver.conf";
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "DBPROXY";

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
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen addresses (IP literals). Also accepts one string split on `;` or `,`.
    #[serde(deserialize_with = "string_or_list")]
    pub listen: Vec<String>,
    /// TCP port for every listen address.
    pub port: i64,
    /// Tokio worker threads (legacy `ThreadNum`); 1 = tokio's current-thread runtime.
    pub threads: i64,
    /// Base URL of the msfs file server (voice messages).
    pub msfs_url: String,
    /// AES key, exactly 32 bytes (must equal msg_server's).
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
    pub host: String,
    /// TCP port.
    pub port: i64,
    /// Schema name.
    pub database: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Pool upper bound.
    pub max_connections: i64,
    /// Unix socket path; when non-empty it is used instead of host/port.
    pub socket: String,
}

/// `[redis]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Unread counters.
    pub unread: RedisInstance,
    /// Group push-shield settings.
    pub group_set: RedisInstance,
    /// Device tokens, login lockout.
    pub token: RedisInstance,
    /// Group member hashes.
    pub group_member: RedisInstance,
    /// Accepted and ignored (the original configured but never used it, quirk Q-R07).
    pub sync: RedisInstance,
}

/// One Redis instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisInstance {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: i64,
    /// Logical database selected after connect.
    pub db: i64,
    /// Pool upper bound.
    pub max_connections: i64,
}

/// `[limits]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted PDU (total length incl. the 16-byte header), bytes.
    pub max_frame_bytes: u64,
    /// Concurrent peer connections.
    pub max_connections: u64,
    /// Requests processed concurrently per connection (more wait: backpressure).
    pub max_in_flight_per_connection: u64,
    /// Send a heartbeat after this long without sending, ms.
    pub heartbeat_ms: u64,
    /// Close a connection after this long without receiving, ms.
    pub idle_timeout_ms: u64,
    /// Grace after SIGTERM/SIGINT before exit, ms.
    pub shutdown_grace_ms: u64,
    /// Per-statement MySQL timeout, ms.
    pub mysql_timeout_ms: u64,
    /// Wait for a pooled MySQL connection, ms.
    pub mysql_pool_wait_ms: u64,
    /// Per-command Redis timeout, ms.
    pub redis_timeout_ms: u64,
    /// msfs HTTP timeout, ms.
    pub msfs_timeout_ms: u64,
    /// Connect timeout for MySQL and Redis, ms.
    pub connect_timeout_ms: u64,
    /// Close a connection whose peer has not taken a reply for this long, ms.
    pub write_timeout_ms: u64,
    /// Verify (`SELECT 1`) a pooled MySQL connection on checkout only when it has been idle
    /// longer than this, ms; 0 verifies on every checkout.
    pub mysql_verify_idle_ms: u64,
    /// Most concurrent hot-path calls (logins, send lookups, message writes, fetches, newest
    /// messages) coalesced into one statement or transaction, 1..=32; 1 turns coalescing off.
    pub batch_max: u64,
    /// Most sends coalesced into one send lookup and one message transaction, 1..=32.
    pub batch_write_max: u64,
    /// Coalesced read batches of one kind running at once (each on one MySQL connection).
    pub batch_read_slots: u64,
    /// Coalesced message-write transactions running at once (each on one master connection).
    pub batch_write_slots: u64,
    /// How long a user pair's relation id, once read or created, serves message lists and
    /// newest-message reads without a new `IMRelationShip` lookup, ms; 0 always looks up.
    pub relation_cache_ms: u64,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// tracing filter directive (`info`, `db_proxy=debug,info`...); `RUST_LOG` wins when set.
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

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: vec!["0.0.0.0".into()],
            port: 10600,
            threads: 1,
            msfs_url: "http://127.0.0.1:8700/".into(),
            aes_key: "12345678901234567890123456789012".into(),
            pid_file: String::new(),
        }
    }
}

impl Default for MysqlInstance {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 3306,
            database: "teamtalk".into(),
            user: "dbproxy".into(),
            password: "dbproxy".into(),
            max_connections: 4,
            socket: String::new(),
        }
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        let r = RedisInstance::default();
        Self {
            unread: r.clone(),
            group_set: r.clone(),
            token: r.clone(),
            group_member: RedisInstance {
                max_connections: 48,
                ..r.clone()
            },
            sync: RedisInstance {
                db: 2,
                max_connections: 1,
                ..r
            },
        }
    }
}

impl Default for RedisInstance {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 6379,
            db: 1,
            max_connections: 16,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 4 * 1024 * 1024,
            max_connections: 1024,
            max_in_flight_per_connection: 64,
            heartbeat_ms: 5_000,
            idle_timeout_ms: 30_000,
            shutdown_grace_ms: 4_000,
            mysql_timeout_ms: 5_000,
            mysql_pool_wait_ms: 5_000,
            redis_timeout_ms: 2_000,
            msfs_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            write_timeout_ms: 30_000,
            mysql_verify_idle_ms: 5_000,
            batch_max: 16,
            batch_write_max: 32,
            batch_read_slots: 4,
            batch_write_slots: 4,
            relation_cache_ms: 5_000,
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

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split([';', ','])
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Which file format a config file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `config/db-proxy.toml` style.
    Toml,
    /// Original `dbproxyserver.conf` style.
    Legacy,
    /// No file: built-in defaults (plus environment).
    Defaults,
}

/// Settings plus where they came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    /// File used, if any.
    pub path: Option<PathBuf>,
    /// Format of that file.
    pub kind: SourceKind,
}

/// Configuration error. Display is one line naming the file / key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--config` with an extension that is neither `.toml` nor `.conf`.
    #[error("config file {0}: unknown extension (use .toml, or .conf for the original dbproxyserver.conf format)")]
    Extension(PathBuf),
    /// The file is missing or unreadable.
    #[error("config file {path}: {msg}")]
    Read {
        /// File.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// Parse / type error reported by the config crate (names the key).
    #[error("config {source_name}: {msg}")]
    Parse {
        /// File name or "environment/defaults".
        source_name: String,
        /// Flattened message.
        msg: String,
    },
    /// A value failed validation.
    #[error("invalid config: {key}: {msg}")]
    Invalid {
        /// Settings path, with the legacy key in parentheses when loaded from a `.conf`.
        key: String,
        /// What is wrong.
        msg: String,
    },
}

/// Loads from an explicit path (format by extension), or with `None` from `./dbproxyserver.conf`
/// if it exists, else built-in defaults. Environment overrides are applied last. Validates.
pub fn load(path: Option<&Path>) -> Result<Loaded, Error> {
    load_with_env(path, None)
}

/// Like [`load`], with an explicit environment map (tests); `None` = the process environment.
pub fn load_with_env(
    path: Option<&Path>,
    env: Option<std::collections::HashMap<String, String>>,
) -> Result<Loaded, Error> {
    let (path, kind) = match path {
        Some(p) => (Some(p.to_path_buf()), kind_of(p)?),
        None => {
            let p = PathBuf::from(LEGACY_DEFAULT_FILE);
            if p.is_file() {
                (Some(p), SourceKind::Legacy)
            } else {
                (None, SourceKind::Defaults)
            }
        }
    };
    let text = match &path {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| Error::Read {
            path: p.clone(),
            msg: e.to_string(),
        })?),
        None => None,
    };
    let source_name = path
        .as_ref()
        .map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
    let parse_err = |e: config::ConfigError| Error::Parse {
        source_name: source_name.clone(),
        msg: one_line(&e.to_string()),
    };

    let defaults = Config::try_from(&Settings::default()).map_err(parse_err)?;
    let mut builder = Config::builder().add_source(defaults);
    if let Some(text) = &text {
        builder = match kind {
            SourceKind::Toml => builder.add_source(File::from_str(text, FileFormat::Toml)),
            SourceKind::Legacy => builder.add_source(File::from_str(text, LegacyFormat)),
            SourceKind::Defaults => builder,
        };
    }
    let mut envsrc = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__");
    if let Some(map) = env {
        envsrc = envsrc.source(Some(map.into_iter().collect()));
    }
    builder = builder.add_source(envsrc);
    let settings: Settings = builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(parse_err)?;
    validate(&settings, kind)?;
    Ok(Loaded {
        settings,
        path,
        kind,
    })
}

fn kind_of(p: &Path) -> Result<SourceKind, Error> {
    match p.extension().and_then(|e| e.to_str()) {
        Some("toml") => Ok(SourceKind::Toml),
        Some("conf") => Ok(SourceKind::Legacy),
        _ => Err(Error::Extension(p.to_path_buf())),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks every value; the error names the key (and the legacy key for `.conf` files).
pub fn validate(s: &Settings, kind: SourceKind) -> Result<(), Error> {
    let bad = |path: &str, msg: String| {
        let key = match (kind, legacy::legacy_key(path)) {
            (SourceKind::Legacy, Some(l)) => format!("{path} ({l})"),
            _ => path.to_owned(),
        };
        Err(Error::Invalid { key, msg })
    };
    let port_ok = |p: i64| (1..=65535).contains(&p);

    if s.server.listen.is_empty() {
        return bad(
            "server.listen",
            "at least one listen address is required".into(),
        );
    }
    for a in &s.server.listen {
        if a.parse::<IpAddr>().is_err() {
            return bad("server.listen", format!("`{a}` is not an IP address"));
        }
    }
    if !port_ok(s.server.port) {
        return bad(
            "server.port",
            format!("{} is not a port (1-65535)", s.server.port),
        );
    }
    if !(1..=1024).contains(&s.server.threads) {
        return bad(
            "server.threads",
            format!("{} is out of range (1-1024)", s.server.threads),
        );
    }
    if s.server.msfs_url.trim().is_empty() {
        return bad("server.msfs_url", "must not be empty".into());
    }
    if s.server.aes_key.len() != 32 {
        return bad(
            "server.aes_key",
            format!("must be exactly 32 bytes (got {})", s.server.aes_key.len()),
        );
    }
    for (role, m) in [("master", &s.mysql.master), ("slave", &s.mysql.slave)] {
        let p = |f: &str| format!("mysql.{role}.{f}");
        if m.host.trim().is_empty() {
            return bad(&p("host"), "must not be empty".into());
        }
        if !port_ok(m.port) {
            return bad(&p("port"), format!("{} is not a port (1-65535)", m.port));
        }
        if m.database.is_empty() {
            return bad(&p("database"), "must not be empty".into());
        }
        if m.user.is_empty() {
            return bad(&p("user"), "must not be empty".into());
        }
        if !(1..=10_000).contains(&m.max_connections) {
            return bad(
                &p("max_connections"),
                format!("{} is out of range (1-10000)", m.max_connections),
            );
        }
    }
    for (name, r) in s.redis.required() {
        let p = |f: &str| format!("redis.{name}.{f}");
        if r.host.trim().is_empty() {
            return bad(&p("host"), "must not be empty".into());
        }
        if !port_ok(r.port) {
            return bad(&p("port"), format!("{} is not a port (1-65535)", r.port));
        }
        if !(0..=15).contains(&r.db) {
            return bad(&p("db"), format!("{} is out of range (0-15)", r.db));
        }
        if !(1..=10_000).contains(&r.max_connections) {
            return bad(
                &p("max_connections"),
                format!("{} is out of range (1-10000)", r.max_connections),
            );
        }
    }
    let l = &s.limits;
    let positive: [(&str, u64); 16] = [
        ("limits.max_frame_bytes", l.max_frame_bytes),
        ("limits.max_connections", l.max_connections),
        (
            "limits.max_in_flight_per_connection",
            l.max_in_flight_per_connection,
        ),
        ("limits.heartbeat_ms", l.heartbeat_ms),
        ("limits.idle_timeout_ms", l.idle_timeout_ms),
        ("limits.shutdown_grace_ms", l.shutdown_grace_ms),
        ("limits.mysql_timeout_ms", l.mysql_timeout_ms),
        ("limits.mysql_pool_wait_ms", l.mysql_pool_wait_ms),
        ("limits.redis_timeout_ms", l.redis_timeout_ms),
        ("limits.msfs_timeout_ms", l.msfs_timeout_ms),
        ("limits.connect_timeout_ms", l.connect_timeout_ms),
        ("limits.write_timeout_ms", l.write_timeout_ms),
        ("limits.batch_max", l.batch_max),
        ("limits.batch_write_max", l.batch_write_max),
        ("limits.batch_read_slots", l.batch_read_slots),
        ("limits.batch_write_slots", l.batch_write_slots),
    ];
    for (k, v) in positive {
        if v == 0 {
            return bad(k, "must be greater than 0".into());
        }
    }
    for (k, v) in [
        ("limits.batch_max", l.batch_max),
        ("limits.batch_write_max", l.batch_write_max),
    ] {
        if v > 32 {
            return bad(k, format!("{v} is out of range (1-32)"));
        }
    }
    for (k, v) in [
        ("limits.batch_read_slots", l.batch_read_slots),
        ("limits.batch_write_slots", l.batch_write_slots),
    ] {
        if v > 1024 {
            return bad(k, format!("{v} is out of range (1-1024)"));
        }
    }
    if l.max_frame_bytes < 16 {
        return bad(
            "limits.max_frame_bytes",
            "must be at least 16 (the header)".into(),
        );
    }
    if s.log.level.trim().is_empty() {
        return bad("log.level", "must not be empty".into());
    }
    if tracing_subscriber::EnvFilter::try_new(&s.log.level).is_err() {
        return bad(
            "log.level",
            format!("`{}` is not a valid filter directive", s.log.level),
        );
    }
    Ok(())
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

fn host_port(host: &str, port: i64) -> String {
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

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Toml => "TOML",
            SourceKind::Legacy => "dbproxyserver.conf (original format)",
            SourceKind::Defaults => "built-in defaults",
        })
    }
}

/// A settings value that validation should have caught but cannot be converted.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: {key}: {msg}")]
pub struct ConvertError {
    key: String,
    msg: String,
}

fn conv<T: TryFrom<i64>>(key: &str, v: i64) -> Result<T, ConvertError> {
    T::try_from(v).map_err(|_| ConvertError {
        key: key.to_owned(),
        msg: format!("{v} is out of range"),
    })
}

fn mysql_config(role: &str, m: &MysqlInstance) -> Result<dbproxy_model::MysqlConfig, ConvertError> {
    Ok(dbproxy_model::MysqlConfig {
        host: m.host.clone(),
        port: conv(&format!("mysql.{role}.port"), m.port)?,
        database: m.database.clone(),
        user: m.user.clone(),
        password: m.password.clone(),
        max_connections: conv(&format!("mysql.{role}.max_connections"), m.max_connections)?,
        socket: Some(m.socket.clone()).filter(|s| !s.is_empty()),
        ..dbproxy_model::MysqlConfig::default()
    })
}

fn redis_config(name: &str, r: &RedisInstance) -> Result<dbproxy_model::RedisConfig, ConvertError> {
    Ok(dbproxy_model::RedisConfig {
        host: r.host.clone(),
        port: conv(&format!("redis.{name}.port"), r.port)?,
        db: conv(&format!("redis.{name}.db"), r.db)?,
        max_connections: conv(&format!("redis.{name}.max_connections"), r.max_connections)?,
    })
}

fn usize_of(key: &str, v: u64) -> Result<usize, ConvertError> {
    usize::try_from(v).map_err(|_| ConvertError {
        key: key.into(),
        msg: format!("{v} is out of range"),
    })
}

impl Settings {
    /// Backend settings of the model crate.
    pub fn store_config(&self) -> Result<dbproxy_model::StoreConfig, ConvertError> {
        let l = &self.limits;
        let ms = std::time::Duration::from_millis;
        let r = &self.redis;
        Ok(dbproxy_model::StoreConfig {
            master: mysql_config("master", &self.mysql.master)?,
            slave: mysql_config("slave", &self.mysql.slave)?,
            unread: redis_config("unread", &r.unread)?,
            group_set: redis_config("group_set", &r.group_set)?,
            token: redis_config("token", &r.token)?,
            group_member: redis_config("group_member", &r.group_member)?,
            msfs_url: self.server.msfs_url.clone(),
            timeouts: dbproxy_model::Timeouts {
                connect: ms(l.connect_timeout_ms),
                pool_wait: ms(l.mysql_pool_wait_ms),
                statement: ms(l.mysql_timeout_ms),
                redis_command: ms(l.redis_timeout_ms),
                msfs_upload: ms(l.msfs_timeout_ms),
                msfs_download: ms(l.msfs_timeout_ms),
                pool_verify_idle: ms(l.mysql_verify_idle_ms),
            },
            batch: dbproxy_model::Batching {
                max_batch: usize_of("limits.batch_max", l.batch_max)?,
                write_max_batch: usize_of("limits.batch_write_max", l.batch_write_max)?,
                read_slots: usize_of("limits.batch_read_slots", l.batch_read_slots)?,
                write_slots: usize_of("limits.batch_write_slots", l.batch_write_slots)?,
            },
            relation_ids_ttl: ms(l.relation_cache_ms),
        })
    }

    /// Settings of the action layer (AES key; lockout and sync timings keep their defaults).
    pub fn action_settings(&self) -> Result<dbproxy_action::ActionSettings, ConvertError> {
        let aes_key: [u8; 32] =
            self.server
                .aes_key
                .as_bytes()
                .try_into()
                .map_err(|_| ConvertError {
                    key: "server.aes_key".into(),
                    msg: "must be exactly 32 bytes".into(),
                })?;
        Ok(dbproxy_action::ActionSettings {
            aes_key,
            ..dbproxy_action::ActionSettings::default()
        })
    }

    /// Listener settings of the transport crate.
    pub fn server_config(&self) -> Result<dbproxy_transport::ServerConfig, ConvertError> {
        let port: u16 = conv("server.port", self.server.port)?;
        let mut listen = Vec::new();
        for a in &self.server.listen {
            let ip: IpAddr = a.parse().map_err(|_| ConvertError {
                key: "server.listen".into(),
                msg: format!("`{a}` is not an IP address"),
            })?;
            listen.push(std::net::SocketAddr::new(ip, port));
        }
        let l = &self.limits;
        let ms = std::time::Duration::from_millis;
        Ok(dbproxy_transport::ServerConfig {
            listen,
            max_frame_len: usize_of("limits.max_frame_bytes", l.max_frame_bytes)?,
            max_connections: usize_of("limits.max_connections", l.max_connections)?,
            max_in_flight_per_connection: usize_of(
                "limits.max_in_flight_per_connection",
                l.max_in_flight_per_connection,
            )?,
            heartbeat_interval: ms(l.heartbeat_ms),
            idle_timeout: ms(l.idle_timeout_ms),
            shutdown_grace: ms(l.shutdown_grace_ms),
            write_timeout: ms(l.write_timeout_ms),
            ..dbproxy_transport::ServerConfig::default()
        })
    }
}
