//! Backends of a bench run: the bench MariaDB database and Redis db (fresh when the bench
//! owns them), the in-process model `Store`, and the db-proxy release binary as a child
//! process with its CPU and memory read from /proc.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use db_proxy::settings::Settings;
use dbproxy_model::Store;
use mysql_async::prelude::Queryable;

use super::options::Args;
use crate::common::{self, Redis, Result};
use crate::db_setup::{grant_user, ident};

/// Settings the server (or the direct baseline) runs with, and a store on the same backends.
pub struct Backends {
    pub settings: Settings,
    pub store: Store,
}

/// Connects a model store to the backends of `s`.
pub async fn connect_store(s: &Settings) -> Result<Store> {
    Store::connect(&s.store_config())
        .await
        .map_err(|e| format!("cannot connect MariaDB/Redis for the bench: {e}").into())
}

/// The backends of config/db-proxy.toml as they are (for --addr: the running server's).
pub async fn existing(_args: &Args) -> Result<Backends> {
    let settings = common::settings()?;
    let store = connect_store(&settings).await?;
    Ok(Backends { settings, store })
}

/// The database and Redis db of a built population, as they are (nothing dropped).
pub async fn population(m: &crate::populate::Manifest) -> Result<Backends> {
    let mut s = common::settings()?;
    s.mysql.master.database = ident("database", &m.database)?;
    s.mysql.slave.database = m.database.clone();
    let redis = &mut s.redis;
    for r in [
        &mut redis.unread,
        &mut redis.group_set,
        &mut redis.token,
        &mut redis.group_member,
    ] {
        r.db = m.redis_db;
    }
    let store = connect_store(&s).await?;
    Ok(Backends { settings: s, store })
}

/// A fresh bench database (dropped and re-created, granted to the configured app user, model
/// schema applied) and a flushed Redis db, both chosen by the options; other settings from
/// config/db-proxy.toml.
pub async fn fresh(args: &Args) -> Result<Backends> {
    fresh_on(
        &args.database,
        args.redis_db,
        args.admin_url.as_deref(),
        "bench",
    )
    .await
}

/// [`fresh`] for any tool: `database` dropped and re-created, Redis db `redis_db` flushed;
/// `who` names the tool in its progress lines.
pub async fn fresh_on(
    database: &str,
    redis_db: u8,
    admin_url: Option<&str>,
    who: &str,
) -> Result<Backends> {
    let mut s = common::settings()?;
    let db = ident("database", database)?;
    if db == s.mysql.master.database || db == s.mysql.slave.database {
        return Err(format!(
            "--database {db} is the configured application database; {who} drops and \
             re-creates its database, so pick another name"
        )
        .into());
    }
    let (mut admin, how) = common::admin_conn(admin_url).await?;
    admin
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .await?;
    admin
        .query_drop(format!(
            "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        ))
        .await?;
    let mut users = vec![(s.mysql.master.user.clone(), s.mysql.master.password.clone())];
    if s.mysql.slave.user != s.mysql.master.user {
        users.push((s.mysql.slave.user.clone(), s.mysql.slave.password.clone()));
    }
    for (user, password) in &users {
        grant_user(&mut admin, &db, &ident("user", user)?, password).await?;
    }
    admin.disconnect().await?;
    eprintln!("{who}: fresh MariaDB database `{db}` (admin: {how})");
    s.mysql.master.database = db.clone();
    s.mysql.slave.database = db;

    let redis = &mut s.redis;
    let mut flushed: Vec<String> = Vec::new();
    for r in [
        &mut redis.unread,
        &mut redis.group_set,
        &mut redis.token,
        &mut redis.group_member,
    ] {
        r.db = redis_db;
        if !flushed.contains(&r.addr()) {
            Redis::connect(r).await?.cmd(&["FLUSHDB"]).await?;
            flushed.push(r.addr());
        }
    }
    eprintln!(
        "{who}: Redis db {redis_db} flushed on {}",
        flushed.join(", ")
    );

    let store = connect_store(&s).await?;
    dbproxy_model::schema::migrate(&store)
        .await
        .map_err(|e| format!("{who} schema: {e}"))?;
    Ok(Backends { settings: s, store })
}

/// db-proxy (target/release/db-proxy) running as a child process on a free local port.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn cargo_build_release() -> Result<()> {
    eprintln!("bench: cargo build --release -p db-proxy");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(common::root())
        .args(["build", "--release", "-p", "db-proxy"])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build --release -p db-proxy failed ({status})").into())
    }
}

impl ServerProcess {
    /// Builds (unless `no_build`) and starts db-proxy with a config generated from `s`
    /// (listen 127.0.0.1 on a free port, JSON log of warnings and start/stop lines), waiting
    /// until it accepts TCP.
    pub async fn start(s: &Settings, no_build: bool, legacy: bool) -> Result<ServerProcess> {
        if !no_build {
            tokio::task::spawn_blocking(cargo_build_release).await??;
        }
        let root = common::root();
        let bin = root.join("target/release/db-proxy");
        if !bin.exists() {
            return Err(format!(
                "{} is missing: run `cargo build --release -p db-proxy`",
                bin.display()
            )
            .into());
        }
        let port = free_port()?;
        let mut cfg = s.clone();
        cfg.server.listen = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        cfg.server.port = port;
        cfg.server.pid_file = String::new();
        // Measured as shipped: with the metrics listener on (config/db-proxy.toml and the
        // example dbproxyserver.conf turn it on), on a port of its own.
        if !cfg.metrics.listen.is_empty() {
            cfg.metrics.listen = format!("127.0.0.1:{}", free_port()?);
        }
        // Warnings, plus the start/stop lines of the server's wiring, whose stop line gives
        // the stage timings (see `StageReport::from_log_line`).
        cfg.log.level = "warn,db_proxy::app=info".into();
        cfg.log.format = db_proxy::settings::LogFormat::Json;
        let dir = root.join("target/bench");
        std::fs::create_dir_all(&dir)?;
        let (config, text) = if legacy {
            (dir.join("dbproxyserver-bench.conf"), legacy_conf_text(&cfg))
        } else {
            let text = toml::to_string_pretty(&cfg).map_err(|e| format!("bench config: {e}"))?;
            (dir.join("db-proxy-bench.toml"), text)
        };
        std::fs::write(&config, text)?;
        let log = dir.join("db-proxy.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("RUST_LOG")
            // The original format has no log keys: the same log settings as overrides.
            .env("DBPROXY__LOG__LEVEL", &cfg.log.level)
            .env("DBPROXY__LOG__FORMAT", "json")
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut me = ServerProcess { child, addr, log };
        me.wait_ready().await?;
        eprintln!(
            "bench: db-proxy pid {} on {addr} (config {}, log {})",
            me.pid(),
            config.display(),
            me.log.display()
        );
        Ok(me)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "db-proxy exited during start-up ({status}); see {}",
                    self.log.display()
                )
                .into());
            }
            if common::tcp_reachable(&self.addr.to_string()).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "db-proxy did not listen on {} within 30 s; see {}",
                    self.addr,
                    self.log.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log file (JSON lines).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// SIGTERM (graceful: stop notice, drain), then SIGKILL after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child.kill()?;
        let _ = self.child.wait();
        Err("db-proxy did not stop within 10 s of SIGTERM; killed".into())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Clock ticks per second of /proc/<pid>/stat times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Reads CPU time (utime + stime) and VmHWM of a process.
pub struct ProcStats {
    ticks: f64,
}

impl ProcStats {
    pub fn new() -> Self {
        ProcStats {
            ticks: clock_ticks(),
        }
    }

    /// utime + stime of `pid` in seconds.
    pub fn cpu_seconds(&self, pid: u32) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 1..))
            .ok_or("unexpected /proc/<pid>/stat format")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Result<u64> {
            Ok(fields
                .get(n - 3)
                .ok_or("short /proc/<pid>/stat")?
                .parse::<u64>()?)
        };
        Ok((field(14)? + field(15)?) as f64 / self.ticks)
    }

    /// Summed utime + stime, in seconds, of the local processes whose name (`comm`) is one
    /// of `names` (e.g. `mariadbd`), or `None` when none runs here (remote backends).
    pub fn cpu_seconds_of(&self, names: &[&str]) -> Option<f64> {
        let mut total = None;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
                continue;
            };
            if names.contains(&comm.trim()) {
                if let Ok(c) = self.cpu_seconds(pid) {
                    total = Some(total.unwrap_or(0.0) + c);
                }
            }
        }
        total
    }

    /// Peak resident set size (VmHWM) of `pid` in KiB.
    pub fn peak_rss_kib(pid: u32) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .ok_or("no VmHWM in /proc/<pid>/status")?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("bad VmHWM line")?
            .parse::<u64>()?)
    }
}

/// `s` as a dbproxyserver.conf with the original's shipped pool sizes (MySQL maxconncnt 16,
/// Redis 16 and 48 for group_member, as config/dbproxyserver.conf.example) and ThreadNum 8 (the
/// drop-in measurements of issue 18 used 8); addresses and credentials from `s`.
fn legacy_conf_text(s: &Settings) -> String {
    let mut t = String::new();
    let listen: Vec<String> = s.server.listen.iter().map(|a| a.to_string()).collect();
    t.push_str(&format!(
        "ListenIP={}\nListenPort={}\nThreadNum=8\n",
        listen.join(";"),
        s.server.port
    ));
    t.push_str(&format!(
        "MsfsSite={}\naesKey={}\n",
        s.server.msfs_url, s.server.aes_key
    ));
    if !s.metrics.listen.is_empty() {
        t.push_str(&format!("MetricsListen={}\n", s.metrics.listen));
    }
    t.push_str("DBInstances=teamtalk_master,teamtalk_slave\n");
    for (name, m) in [
        ("teamtalk_master", &s.mysql.master),
        ("teamtalk_slave", &s.mysql.slave),
    ] {
        t.push_str(&format!(
            "{name}_host={}\n{name}_port={}\n{name}_dbname={}\n{name}_username={}\n\
             {name}_password={}\n{name}_maxconncnt=16\n",
            m.host, m.port, m.database, m.user, m.password
        ));
    }
    t.push_str("CacheInstances=unread,group_set,token,group_member\n");
    for (name, r) in s.redis.required() {
        let max = if name == "group_member" { 48 } else { 16 };
        t.push_str(&format!(
            "{name}_host={}\n{name}_port={}\n{name}_db={}\n{name}_maxconncnt={max}\n",
            r.host, r.port, r.db
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_bench_conf_loads_as_the_shipped_style() {
        let mut s = Settings::default();
        s.server.port = 10777;
        s.mysql.master.database = "dbproxy_bench".into();
        s.redis.token.db = 15;
        s.metrics.listen = "127.0.0.1:9777".into();
        let dir = std::env::temp_dir().join(format!("xtask-legacy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bench.conf");
        std::fs::write(&path, legacy_conf_text(&s)).unwrap();
        let loaded = db_proxy::settings::load_with_env(Some(&path), Some(Default::default()));
        std::fs::remove_dir_all(&dir).unwrap();
        let got = loaded.unwrap().settings;
        assert_eq!(got.server.port, 10777);
        // Mapped as db-proxy maps a shipped file: ThreadNum 8 -> 1, maxconncnt 16 -> 4.
        assert_eq!(got.server.threads, 1);
        assert_eq!(got.mysql.master.database, "dbproxy_bench");
        assert_eq!(got.mysql.master.max_connections, 4);
        assert_eq!(got.redis.token.db, 15);
        assert_eq!(got.redis.group_member.max_connections, 48);
        assert_eq!(got.server.aes_key, s.server.aes_key);
        assert_eq!(got.metrics.listen, "127.0.0.1:9777");
    }
}
