//! Shared helpers: workspace paths, settings, MariaDB admin/app connections, a tiny Redis client.

use std::path::PathBuf;
use std::time::Duration;

use db_proxy::settings::{MysqlInstance, RedisInstance, Settings};
use mysql_async::{Conn, Opts, OptsBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// xtask error: a message for the user.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// xtask result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Default MariaDB socket on Debian.
pub const MYSQL_SOCKET: &str = "/run/mysqld/mysqld.sock";
/// How to start MariaDB here.
pub const START_MARIADB: &str =
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd";
/// How to start Redis here.
pub const START_REDIS: &str = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
     --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log";

/// Workspace root (parent of xtask/).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), |p| p.to_path_buf())
}

/// The config `cargo xtask serve` runs with.
pub fn config_path() -> PathBuf {
    root().join("config/db-proxy.toml")
}

/// Settings of config/db-proxy.toml (plus DBPROXY__ environment overrides).
pub fn settings() -> Result<Settings> {
    Ok(db_proxy::settings::load(Some(&config_path()))?.settings)
}

const TIMEOUT: Duration = Duration::from_secs(5);

pub async fn connect(opts: impl Into<Opts>) -> Result<Conn> {
    match tokio::time::timeout(TIMEOUT, Conn::new(opts.into())).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err("timed out".into()),
    }
}

/// Root over TCP 127.0.0.1:3306 with an empty password.
pub fn root_tcp_opts() -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .prefer_socket(false)
}

/// Root over the unix socket.
pub fn root_socket_opts() -> OptsBuilder {
    OptsBuilder::default()
        .user(Some("root"))
        .socket(Some(MYSQL_SOCKET))
}

/// An admin connection: `admin_url` if given, else root over TCP, else root over the socket.
pub async fn admin_conn(admin_url: Option<&str>) -> Result<(Conn, String)> {
    if let Some(url) = admin_url {
        let opts = Opts::from_url(url).map_err(|e| format!("--admin-url: {e}"))?;
        return connect(opts)
            .await
            .map(|c| (c, "--admin-url".to_owned()))
            .map_err(|e| format!("cannot connect with --admin-url: {e}").into());
    }
    let tcp_err = match connect(root_tcp_opts()).await {
        Ok(c) => return Ok((c, "root@127.0.0.1:3306".into())),
        Err(e) => e,
    };
    match connect(root_socket_opts()).await {
        Ok(c) => Ok((c, format!("root via {MYSQL_SOCKET}"))),
        Err(sock_err) => Err(format!(
            "cannot connect to MariaDB as an admin: root@127.0.0.1:3306: {tcp_err}; \
             root via {MYSQL_SOCKET}: {sock_err}. Start MariaDB with `{START_MARIADB}`, \
             or pass --admin-url mysql://USER:PASSWORD@HOST:PORT"
        )
        .into()),
    }
}

/// Connection options of the application user of `m`, to its database.
pub fn app_opts(m: &MysqlInstance) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(m.host.clone())
        .tcp_port(m.port)
        .user(Some(m.user.clone()))
        .pass(Some(m.password.clone()))
        .db_name(Some(m.database.clone()))
        .prefer_socket(false)
}

/// A connection as the application user of `m`, to its database.
pub async fn app_conn(m: &MysqlInstance) -> Result<Conn> {
    connect(app_opts(m)).await.map_err(|e| {
        format!(
            "cannot log in to MariaDB {} as `{}` (database `{}`): {e}. Run `cargo xtask db-setup`",
            m.addr(),
            m.user,
            m.database
        )
        .into()
    })
}

/// True if a TCP connection to `addr` succeeds within 2 s.
pub async fn tcp_reachable(addr: &str) -> std::result::Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2 s".into()),
    }
}

/// Minimal RESP client for a few simple commands (replies: status, error, integer, bulk).
pub struct Redis {
    io: BufReader<TcpStream>,
}

impl Redis {
    /// Connects and SELECTs the instance's db.
    pub async fn connect(r: &RedisInstance) -> Result<Self> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(r.addr()))
            .await
            .map_err(|_| format!("Redis {}: connect timed out", r.addr()))?
            .map_err(|e| {
                format!(
                    "cannot reach Redis at {} ({e}): start it with `{START_REDIS}`",
                    r.addr()
                )
            })?;
        let mut me = Self {
            io: BufReader::new(stream),
        };
        me.cmd(&["SELECT", &r.db.to_string()]).await?;
        Ok(me)
    }

    /// Sends one command, returns the first reply line without its type byte.
    pub async fn cmd(&mut self, args: &[&str]) -> Result<String> {
        let mut out = Vec::new();
        encode(&mut out, args);
        let fut = async {
            self.io.get_mut().write_all(&out).await?;
            let mut line = String::new();
            self.io.read_line(&mut line).await?;
            if line.starts_with('$') && !line.starts_with("$-1") {
                let mut body = String::new();
                self.io.read_line(&mut body).await?;
                return Ok::<_, std::io::Error>(format!("+{}", body.trim_end()));
            }
            Ok(line.trim_end().to_owned())
        };
        let line = tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| "Redis command timed out")??;
        match line.split_at_checked(1) {
            Some(("-", msg)) => Err(format!("Redis {}: {msg}", args.first().unwrap_or(&"")).into()),
            Some((_, rest)) => Ok(rest.to_owned()),
            None => Err(format!("Redis {}: connection closed", args.first().unwrap_or(&"")).into()),
        }
    }
}

/// Appends one command in RESP.
fn encode<S: AsRef<str>>(out: &mut Vec<u8>, args: &[S]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

impl Redis {
    /// Sends many commands at once (replies: status, error or integer only) and reads every
    /// reply; fails on the first error reply after reading them all.
    pub async fn pipeline(&mut self, cmds: &[Vec<String>]) -> Result<()> {
        if cmds.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for c in cmds {
            encode(&mut out, c);
        }
        let fut = async {
            self.io.get_mut().write_all(&out).await?;
            let mut first_error = None;
            let mut line = String::new();
            for _ in cmds {
                line.clear();
                if self.io.read_line(&mut line).await? == 0 {
                    return Ok(Some("connection closed".to_owned()));
                }
                if let Some(msg) = line.strip_prefix('-') {
                    first_error.get_or_insert_with(|| msg.trim_end().to_owned());
                }
            }
            Ok::<_, std::io::Error>(first_error)
        };
        match tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .map_err(|_| "Redis pipeline timed out")??
        {
            None => Ok(()),
            Some(msg) => Err(format!("Redis pipeline: {msg}").into()),
        }
    }
}
