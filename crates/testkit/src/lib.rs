//! Test environment for crates that use `dbproxy-model` (dev-dependency only).
//!
//! [`TestEnv::new`] creates a fresh MariaDB database `dbproxy_t_<unixtime>_<pid>_<n>`
//! (migrated with the project schema) and starts a private `redis-server` on a free port.
//! Dropping the env (or [`TestEnv::cleanup`]) drops the database and kills redis, so tests
//! run in parallel and leave nothing behind. Leftover `dbproxy_t_*` databases older than
//! one hour (crashed runs) are dropped by the next `TestEnv::new`.
//!
//! Admin URL: env `DBPROXY_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`; when
//! that is refused, `mysql://root@localhost:3306/?socket=/run/mysqld/mysqld.sock`.
// A test-only crate: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mariadb;
mod msfs;
mod relay;
pub mod sentinel;
pub use mariadb::PrivateMariadb;
pub use msfs::FakeMsfs;
pub use relay::TcpRelay;
pub use sentinel::SentinelSet;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dbproxy_model::{MysqlConfig, RedisConfig, Store, StoreConfig, Timeouts};
use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306";
const SOCKET_URL: &str = "mysql://root@localhost:3306/?socket=/run/mysqld/mysqld.sock";
const PREFIX: &str = "dbproxy_t_";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One test's private backends.
pub struct TestEnv {
    /// Config pointing at the test database and the private redis (db 1 for all instances).
    pub config: StoreConfig,
    /// Connected store.
    pub store: Store,
    /// Name of the test database.
    pub db_name: String,
    /// Port of the private redis-server.
    pub redis_port: u16,
    admin_url: String,
    redis: Option<Child>,
    cleaned: bool,
}

#[derive(QueryableByName)]
struct DbName {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = "Database")]
    name: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn admin_connect(given: Option<String>) -> (AsyncMysqlConnection, String) {
    if let Some(url) = given.or_else(|| std::env::var("DBPROXY_TEST_MYSQL_URL").ok()) {
        let conn = AsyncMysqlConnection::establish(&url)
            .await
            .unwrap_or_else(|e| panic!("DBPROXY_TEST_MYSQL_URL={url}: {e}"));
        return (conn, url);
    }
    match AsyncMysqlConnection::establish(DEFAULT_URL).await {
        Ok(c) => (c, DEFAULT_URL.to_string()),
        Err(tcp_err) => match AsyncMysqlConnection::establish(SOCKET_URL).await {
            Ok(c) => (c, SOCKET_URL.to_string()),
            Err(e) => {
                panic!("cannot connect as admin: {DEFAULT_URL}: {tcp_err}; {SOCKET_URL}: {e}")
            }
        },
    }
}

/// Map the admin URL onto a [`MysqlConfig`] for database `db`.
pub fn mysql_config_from_url(admin_url: &str, db: &str) -> MysqlConfig {
    let u = url::Url::parse(admin_url).unwrap_or_else(|e| panic!("bad admin url {admin_url}: {e}"));
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let socket = u
        .query_pairs()
        .find(|(k, _)| k == "socket")
        .map(|(_, v)| v.into_owned());
    MysqlConfig {
        host: u.host_str().unwrap_or("127.0.0.1").to_string(),
        port: u.port().unwrap_or(3306),
        database: db.to_string(),
        user: dec(u.username()),
        password: dec(u.password().unwrap_or("")),
        max_connections: 8,
        socket,
        ..MysqlConfig::default()
    }
}

async fn drop_stale(conn: &mut AsyncMysqlConnection) {
    let names: Vec<DbName> = diesel::sql_query("SHOW DATABASES LIKE 'dbproxy\\_t\\_%'")
        .load(conn)
        .await
        .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(3600);
    for n in names {
        let ts = n
            .name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('_').next())
            .and_then(|t| t.parse::<u64>().ok());
        let safe = n
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if let Some(ts) = ts {
            if ts < cutoff && safe {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{}`", n.name))
                    .execute(conn)
                    .await;
            }
        }
    }
}

/// An admin connection for clean-up, or `None` when the server does not answer within 5 s
/// (a private server a failed test left frozen or killed).
async fn connect_briefly(url: &str) -> Option<AsyncMysqlConnection> {
    tokio::time::timeout(Duration::from_secs(5), AsyncMysqlConnection::establish(url))
        .await
        .ok()?
        .ok()
}

/// Sends `kill -<sig>` to `pid` (when there is one).
pub(crate) fn signal(pid: Option<u32>, sig: &str) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status();
    }
}

/// `name` as an identifier to paste between backquotes: only ASCII letters, digits and `_`.
fn ident(name: &str) -> &str {
    assert!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "not a plain identifier: {name:?}"
    );
    name
}

/// A free TCP port on 127.0.0.1 (free when asked; a later bind may still lose a race).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

pub(crate) fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().expect("addr"),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// Start a private redis-server; returns (child, port).
pub fn start_redis() -> (Child, u16) {
    start_redis_with(&[])
}

/// [`start_redis`] with more arguments (see [`spawn_redis_with`]).
pub(crate) fn start_redis_with(extra: &[String]) -> (Child, u16) {
    for _attempt in 0..5 {
        let port = free_port();
        if let Some(child) = spawn_redis_with(port, extra) {
            return (child, port);
        }
    }
    panic!("could not start redis-server");
}

/// [`spawn_redis`] with more arguments: a config file first (`extra[0]` when it does not
/// start with `--`), then options.
pub(crate) fn spawn_redis_with(port: u16, extra: &[String]) -> Option<Child> {
    let (file, options) = match extra.first() {
        Some(f) if !f.starts_with("--") => (vec![f.clone()], &extra[1..]),
        _ => (Vec::new(), extra),
    };
    let mut child = Command::new("redis-server")
        .args(&file)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(options)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server (is it installed?)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if redis_ping(port) {
            return Some(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            break; // port taken by someone else meanwhile
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl TestEnv {
    /// Fresh database + private redis + connected, migrated store.
    pub async fn new() -> TestEnv {
        Self::with_config(|_| {}).await
    }

    /// Like [`TestEnv::new`], letting the test adjust the config (timeouts, pool sizes)
    /// before the store connects.
    pub async fn with_config(adjust: impl FnOnce(&mut StoreConfig)) -> TestEnv {
        Self::with_admin(None, adjust).await
    }

    /// Like [`TestEnv::with_config`], with the database on `server` (a private mariadbd a
    /// test may kill or freeze) instead of the shared one.
    pub async fn on_mariadb(
        server: &PrivateMariadb,
        adjust: impl FnOnce(&mut StoreConfig),
    ) -> TestEnv {
        Self::with_admin(Some(server.url()), adjust).await
    }

    async fn with_admin(
        admin_url: Option<String>,
        adjust: impl FnOnce(&mut StoreConfig),
    ) -> TestEnv {
        let (mut admin, admin_url) = admin_connect(admin_url).await;
        drop_stale(&mut admin).await;
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let db_name = format!("{PREFIX}{}_{}_{}", now_secs(), std::process::id(), n);
        diesel::sql_query(format!(
            "CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        ))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("create database {db_name}: {e}"));
        // The schema goes in over the admin connection, outside the store and so outside any
        // short statement timeout a test configures for the store.
        diesel::sql_query(format!("USE `{db_name}`"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("use {db_name}: {e}"));
        for statement in dbproxy_model::schema::statements() {
            diesel::sql_query(statement.as_str())
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("schema of {db_name}: {e}"));
        }
        drop(admin);

        let (child, redis_port) = start_redis();
        let mysql = mysql_config_from_url(&admin_url, &db_name);
        let redis = RedisConfig {
            host: "127.0.0.1".into(),
            port: redis_port,
            db: 1,
            max_connections: 2,
            ..RedisConfig::default()
        };
        let mut config = StoreConfig {
            master: mysql.clone(),
            slave: mysql,
            unread: redis.clone(),
            group_set: redis.clone(),
            token: redis.clone(),
            group_member: redis,
            msfs_url: "http://127.0.0.1:1/".into(),
            timeouts: Timeouts::default(),
            batch: Default::default(),
            relation_ids_ttl: StoreConfig::default().relation_ids_ttl,
        };
        adjust(&mut config);
        // Build the env before connecting so a failed connect still cleans up on drop.
        let env = TestEnv {
            store: match Store::connect(&config).await {
                Ok(s) => s,
                Err(e) => {
                    let mut tmp = Partial {
                        admin_url: admin_url.clone(),
                        db_name: db_name.clone(),
                        redis: Some(child),
                    };
                    tmp.cleanup_blocking();
                    panic!("Store::connect: {e}");
                }
            },
            config,
            db_name,
            redis_port,
            admin_url,
            redis: Some(child),
            cleaned: false,
        };
        env
    }

    /// Runs one fixed statement (no parameters) on the store's master, as another program
    /// sharing the database would: schema changes, rows changed behind the model's back.
    /// Returns the affected rows; panics on failure.
    pub async fn run_sql(&self, sql: &'static str) -> usize {
        self.store
            .master(async |c| {
                diesel::sql_query(sql)
                    .execute(c)
                    .await
                    .map_err(|e| dbproxy_model::Error::mysql(sql, e))
            })
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The number a fixed `SELECT COUNT(*) AS n ...` returns, read on the store's master
    /// behind the model's back; panics on failure.
    pub async fn count_sql(&self, sql: &'static str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.store
            .master(async |c| {
                diesel::sql_query(sql)
                    .get_result::<Count>(c)
                    .await
                    .map_err(|e| dbproxy_model::Error::mysql(sql, e))
            })
            .await
            .map(|c| c.n)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every stored 1:1 message (all eight shards) as (relateId, msgId, content), read on
    /// the master behind the model's back; panics on failure.
    pub async fn single_messages(&self) -> Vec<(u32, u32, Vec<u8>)> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::Integer>)]
            #[diesel(column_name = "relateId")]
            relate_id: u32,
            #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::Integer>)]
            #[diesel(column_name = "msgId")]
            msg_id: u32,
            #[diesel(sql_type = diesel::sql_types::Binary)]
            content: Vec<u8>,
        }
        const SHARDS: [&str; 8] = [
            "SELECT relateId, msgId, content FROM IMMessage_0",
            "SELECT relateId, msgId, content FROM IMMessage_1",
            "SELECT relateId, msgId, content FROM IMMessage_2",
            "SELECT relateId, msgId, content FROM IMMessage_3",
            "SELECT relateId, msgId, content FROM IMMessage_4",
            "SELECT relateId, msgId, content FROM IMMessage_5",
            "SELECT relateId, msgId, content FROM IMMessage_6",
            "SELECT relateId, msgId, content FROM IMMessage_7",
        ];
        let mut out = Vec::new();
        for sql in SHARDS {
            let rows: Vec<Row> = self
                .store
                .master(async |c| {
                    diesel::sql_query(sql)
                        .load(c)
                        .await
                        .map_err(|e| dbproxy_model::Error::mysql(sql, e))
                })
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            out.extend(rows.into_iter().map(|r| (r.relate_id, r.msg_id, r.content)));
        }
        out
    }

    /// An admin connection with the test database selected (for statements built at run
    /// time, which the store's fixed-statement helpers do not take).
    async fn admin_on_db(&self) -> AsyncMysqlConnection {
        let (mut conn, _) = admin_connect(Some(self.admin_url.clone())).await;
        diesel::sql_query(format!("USE `{}`", self.db_name))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("use {}: {e}", self.db_name));
        conn
    }

    /// The tables of the test database (SHOW TABLES), sorted.
    pub async fn tables(&self) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            #[diesel(column_name = "TABLE_NAME")]
            name: String,
        }
        let mut conn = self.admin_on_db().await;
        let sql = "SELECT TABLE_NAME FROM information_schema.TABLES \
                   WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME";
        let rows: Vec<Name> = diesel::sql_query(sql)
            .load(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|r| r.name).collect()
    }

    /// The `n` column (a BIGINT) of every row a statement built at run time returns, read
    /// over an admin connection on the test database; panics on failure.
    pub async fn query_i64s(&self, sql: &str) -> Vec<i64> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.admin_on_db().await;
        let rows: Vec<N> = diesel::sql_query(sql)
            .load(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|r| r.n).collect()
    }

    /// `CHECKSUM TABLE` of every table of the test database, by name (0 for an empty
    /// table). Panics when a table has no checksum (it went missing).
    pub async fn checksums(&self) -> BTreeMap<String, u64> {
        #[derive(QueryableByName)]
        struct Sum {
            #[diesel(sql_type = Text)]
            #[diesel(column_name = "Table")]
            table: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Unsigned<diesel::sql_types::BigInt>>)]
            #[diesel(column_name = "Checksum")]
            checksum: Option<u64>,
        }
        let tables = self.tables().await;
        let mut conn = self.admin_on_db().await;
        let mut out = BTreeMap::new();
        for t in tables {
            let sql = format!("CHECKSUM TABLE `{}`", ident(&t));
            let row: Sum = diesel::sql_query(&sql)
                .get_result(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let sum = row
                .checksum
                .unwrap_or_else(|| panic!("{sql}: no checksum for {}", row.table));
            out.insert(t, sum);
        }
        out
    }

    /// `SELECT COUNT(*)` of every table of the test database, by name.
    pub async fn row_counts(&self) -> BTreeMap<String, i64> {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let tables = self.tables().await;
        let mut conn = self.admin_on_db().await;
        let mut out = BTreeMap::new();
        for t in tables {
            let sql = format!("SELECT COUNT(*) AS n FROM `{}`", ident(&t));
            let row: Count = diesel::sql_query(&sql)
                .get_result(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            out.insert(t, row.n);
        }
        out
    }

    /// One digest per row of `table` (which must have an integer `id`): id → MD5 over the
    /// hex of every column in order (NULL distinct from every value). Tells which rows a
    /// test changed, added or removed where `CHECKSUM TABLE` only tells that one did.
    pub async fn row_digests(&self, table: &str) -> BTreeMap<i64, String> {
        #[derive(QueryableByName)]
        struct Column {
            #[diesel(sql_type = Text)]
            #[diesel(column_name = "COLUMN_NAME")]
            name: String,
        }
        #[derive(QueryableByName)]
        struct Digest {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
            #[diesel(sql_type = Text)]
            d: String,
        }
        let table = ident(table);
        let mut conn = self.admin_on_db().await;
        let sql = format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
        );
        let columns: Vec<Column> = diesel::sql_query(&sql)
            .load(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(!columns.is_empty(), "table {table} has no columns");
        let parts: Vec<String> = columns
            .iter()
            .map(|c| format!("IFNULL(HEX(`{}`), 'NULL')", ident(&c.name)))
            .collect();
        let sql = format!(
            "SELECT CAST(id AS SIGNED) AS id, MD5(CONCAT_WS(',', {})) AS d FROM `{table}` ORDER BY id",
            parts.join(", ")
        );
        let rows: Vec<Digest> = diesel::sql_query(&sql)
            .load(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|r| (r.id, r.d)).collect()
    }

    /// Admin URL used (root / socket).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Kill the private redis-server (e.g. to test "Redis down" paths).
    pub fn kill_redis(&mut self) {
        if let Some(mut c) = self.redis.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the private redis-server again on the same port, empty (a Redis restart
    /// without persistence, as the shipped config runs it).
    pub fn restart_redis(&mut self) {
        self.kill_redis();
        self.redis = Some(spawn_redis_with(self.redis_port, &[]).expect("restart redis-server"));
    }

    /// Stops the private redis-server process (SIGSTOP): connections stay open, nothing
    /// is answered.
    pub fn freeze_redis(&self) {
        signal(self.redis.as_ref().map(Child::id), "STOP");
    }

    /// Resumes a frozen redis-server (SIGCONT).
    pub fn thaw_redis(&self) {
        signal(self.redis.as_ref().map(Child::id), "CONT");
    }

    /// Drop the database and stop redis now.
    pub async fn cleanup(mut self) {
        self.thaw_redis();
        self.kill_redis();
        if let Some(mut admin) = connect_briefly(&self.admin_url).await {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{}`", self.db_name))
                .execute(&mut admin)
                .await;
        }
        self.cleaned = true;
    }

    fn cleanup_sync(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        let mut p = Partial {
            admin_url: self.admin_url.clone(),
            db_name: self.db_name.clone(),
            redis: self.redis.take(),
        };
        p.cleanup_blocking();
    }
}

struct Partial {
    admin_url: String,
    db_name: String,
    redis: Option<Child>,
}

impl Partial {
    /// Kill redis and drop the database from a separate thread with its own runtime
    /// (works from inside or outside a tokio runtime).
    fn cleanup_blocking(&mut self) {
        if let Some(mut c) = self.redis.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let url = self.admin_url.clone();
        let db = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Some(mut admin) = connect_briefly(&url).await {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{db}`"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.cleanup_sync();
    }
}
