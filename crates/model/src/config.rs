//! Backend configuration of the storage layer.
//!
//! The binary maps its own config file (TOML or the legacy `dbproxyserver.conf`) onto
//! [`StoreConfig`]; `Default` points at a local MariaDB database `teamtalk`
//! (user `dbproxy` / `dbproxy`) and Redis `127.0.0.1:6379` db 1.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

/// One MySQL/MariaDB pool (`teamtalk_master` or `teamtalk_slave`). Its `Debug` masks the
/// password.
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(default)]
pub struct MysqlConfig {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
    /// Upper bound of the pool (`<db>_maxconncnt`).
    pub max_connections: usize,
    /// Unix socket path; when set the connection goes through the socket.
    pub socket: Option<String>,
    /// For a loopback host, let the driver switch to the server's unix socket after the
    /// TCP handshake (faster; mysql_async's default). `false` keeps the TCP connection.
    pub prefer_socket: bool,
}

impl std::fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"<secret>")
            .field("max_connections", &self.max_connections)
            .field("socket", &self.socket)
            .field("prefer_socket", &self.prefer_socket)
            .finish()
    }
}

impl Default for MysqlConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 3306,
            database: "teamtalk".into(),
            user: "dbproxy".into(),
            password: "dbproxy".into(),
            max_connections: 4,
            socket: None,
            prefer_socket: true,
        }
    }
}

/// Characters escaped in URL components: everything except unreserved ones.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl MysqlConfig {
    /// `mysql://user:password@host:port/database[?socket=...]` with every component
    /// percent-encoded (passwords may contain `@`, `/`, `:` ...).
    pub fn url(&self) -> String {
        let mut url = format!(
            "mysql://{}:{}@{}:{}/{}",
            utf8_percent_encode(&self.user, COMPONENT),
            utf8_percent_encode(&self.password, COMPONENT),
            self.host,
            self.port,
            utf8_percent_encode(&self.database, COMPONENT),
        );
        let mut sep = '?';
        if let Some(sock) = self.socket.as_deref().filter(|s| !s.is_empty()) {
            url.push(sep);
            url.push_str("socket=");
            url.push_str(&utf8_percent_encode(sock, COMPONENT).to_string());
            sep = '&';
        }
        if !self.prefer_socket {
            url.push(sep);
            url.push_str("prefer_socket=false");
        }
        url
    }
}

/// One logical Redis instance (`unread`, `group_set`, `token`, `group_member`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    pub host: String,
    pub port: u16,
    /// Logical database selected after connecting.
    pub db: u8,
    /// Number of multiplexed connections in the pool (`<cache>_maxconncnt`, capped at 2).
    pub max_connections: usize,
    /// Redis Sentinel: `host:port` of each sentinel to ask for the current master of
    /// [`RedisConfig::sentinel_service`] (then `host` and `port` are not used). Empty:
    /// `host:port` directly.
    pub sentinels: Vec<String>,
    /// The master name the sentinels monitor (`sentinel monitor <name> ...`).
    pub sentinel_service: String,
    /// After each msgId allocation, wait (Redis `WAIT`) until this many replicas have it, so
    /// a failover to a replica cannot hand the same msgIds out again. 0: no wait.
    pub replica_acks: u32,
    /// The longest such a wait lasts; the send goes on without the acknowledgement after it
    /// (counted in `dbproxy_redis_replica_ack_timeouts_total`).
    pub replica_ack_wait: std::time::Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 6379,
            db: 1,
            max_connections: 16,
            sentinels: Vec::new(),
            sentinel_service: String::new(),
            replica_acks: 0,
            replica_ack_wait: std::time::Duration::from_millis(100),
        }
    }
}

impl RedisConfig {
    /// Identity used to share one pool between logical instances: the same server and db,
    /// and the same replica acknowledgements (which decide how allocations run).
    pub(crate) fn endpoint(&self) -> (String, u16, u8, Vec<String>, String, u32, Duration) {
        (
            self.host.clone(),
            self.port,
            self.db,
            self.sentinels.clone(),
            self.sentinel_service.clone(),
            self.replica_acks,
            self.replica_ack_wait,
        )
    }

    /// How logs and metric labels name the endpoint: `host:port/db`, or
    /// `sentinel <service>/db`.
    pub(crate) fn label(&self) -> String {
        if self.sentinels.is_empty() {
            format!("{}:{}/{}", self.host, self.port, self.db)
        } else {
            format!("sentinel {}/{}", self.sentinel_service, self.db)
        }
    }
}

/// Bounded waits for every backend call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// Opening a new MySQL/Redis connection.
    #[serde(with = "millis")]
    pub connect: Duration,
    /// Waiting for a free pooled MySQL connection.
    #[serde(with = "millis")]
    pub pool_wait: Duration,
    /// One whole unit of DB work (all statements of one `Store::master`/`slave` call).
    #[serde(with = "millis")]
    pub statement: Duration,
    /// One Redis command (or pipeline / script).
    #[serde(with = "millis")]
    pub redis_command: Duration,
    /// A pooled MySQL connection idle for longer than this is verified (`SELECT 1`) on
    /// checkout before it is handed out; one used more recently is handed out at once
    /// (unless diesel-async reports it broken). Zero verifies on every checkout.
    #[serde(with = "millis")]
    pub pool_verify_idle: Duration,
    /// msfs upload (whole request).
    #[serde(with = "millis")]
    pub msfs_upload: Duration,
    /// msfs download (whole request); the original used 2 s.
    #[serde(with = "millis")]
    pub msfs_download: Duration,
    /// How long a message write whose outcome is unknown (its COMMIT cut off by a timeout or
    /// a broken connection) keeps asking the master whether it was stored before the caller
    /// gets the failure reply. The answer is exact once the master answers.
    #[serde(with = "millis")]
    pub outcome_check: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            pool_wait: Duration::from_secs(5),
            statement: Duration::from_secs(5),
            redis_command: Duration::from_secs(2),
            pool_verify_idle: Duration::from_secs(5),
            msfs_upload: Duration::from_secs(5),
            msfs_download: Duration::from_secs(2),
            outcome_check: Duration::from_secs(30),
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Everything [`crate::Store::connect`] needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    pub master: MysqlConfig,
    pub slave: MysqlConfig,
    pub unread: RedisConfig,
    pub group_set: RedisConfig,
    pub token: RedisConfig,
    pub group_member: RedisConfig,
    /// Base URL of the msfs file server (`MsfsSite`); `http://` is assumed when missing.
    pub msfs_url: String,
    pub timeouts: Timeouts,
    /// Coalescing of concurrent hot-path calls (logins, send lookups, message writes,
    /// message lists, newest messages, group lists).
    pub batch: Batching,
    /// How long the relation id of a user pair, once read or created, is used without
    /// asking `IMRelationShip` again (message lists and newest messages); zero: always ask.
    #[serde(with = "millis")]
    pub relation_ids_ttl: Duration,
}

/// How concurrent calls of one kind are coalesced into shared statements (see the
/// `batch` module): a call that finds a free slot and a free connection of its MySQL pool
/// runs at once; calls arriving while all slots or all connections of the pool are busy
/// wait and run together as the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Batching {
    /// Most calls in one read batch, 1..=32 (1 turns coalescing off).
    pub max_batch: usize,
    /// Most sends in one write batch (the send lookup and the message transaction), 1..=32.
    /// Larger than `max_batch` by default: a message transaction pays per shard and per
    /// round trip, not per row, and sends have a far looser latency budget than reads.
    pub write_max_batch: usize,
    /// Read batches of one kind running at once, each on one connection.
    pub read_slots: usize,
    /// Message-write transactions running at once, each on one master connection.
    pub write_slots: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_batch: 16,
            write_max_batch: 32,
            read_slots: 4,
            write_slots: 4,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            master: MysqlConfig::default(),
            slave: MysqlConfig::default(),
            unread: RedisConfig::default(),
            group_set: RedisConfig::default(),
            token: RedisConfig::default(),
            group_member: RedisConfig {
                max_connections: 48,
                ..RedisConfig::default()
            },
            msfs_url: "http://127.0.0.1:8700/".into(),
            timeouts: Timeouts::default(),
            batch: Batching::default(),
            relation_ids_ttl: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_credentials() {
        let c = MysqlConfig {
            user: "u@x".into(),
            password: "p:w/d@#?".into(),
            ..MysqlConfig::default()
        };
        assert_eq!(
            c.url(),
            "mysql://u%40x:p%3Aw%2Fd%40%23%3F@127.0.0.1:3306/teamtalk"
        );
        let s = MysqlConfig {
            socket: Some("/run/mysqld/mysqld.sock".into()),
            ..MysqlConfig::default()
        };
        assert!(s.url().ends_with("?socket=%2Frun%2Fmysqld%2Fmysqld.sock"));
    }
}
