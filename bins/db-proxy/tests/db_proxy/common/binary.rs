//! The real db-proxy binary as a child process, configured by a TOML file written from a
//! [`TestEnv`]: what operators run, for the tests of signals, memory and logs.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dbproxy_testkit::{free_port, TestEnv};

/// The AES key the binary runs with (a secret no log line may show).
pub const AES_KEY: &str = "test-aes-key-never-logged-012345";

/// A running db-proxy process; killed when dropped.
pub struct Binary {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary on a free port against `env`'s database and Redis, with
    /// `server.threads = threads` and `limits` (lines `key = value`, possibly followed by
    /// further sections) as its `[limits]`, logging at `info`. Its AES key is
    /// [`AES_KEY`]. Waits until it accepts connections.
    pub fn start(env: &TestEnv, threads: u32, limits: &str) -> Binary {
        Self::start_logging(env, threads, limits, "info")
    }

    /// [`Binary::start`] with `RUST_LOG=rust_log`.
    pub fn start_logging(env: &TestEnv, threads: u32, limits: &str, rust_log: &str) -> Binary {
        Self::start_on(env, threads, limits, rust_log, None)
    }

    /// [`Binary::start`] with `redis` (the `[redis.*]` sections) instead of `env`'s Redis.
    pub fn start_with_redis(env: &TestEnv, limits: &str, redis: &str) -> Binary {
        Self::start_on(env, 1, limits, "info", Some(redis))
    }

    fn start_on(
        env: &TestEnv,
        threads: u32,
        limits: &str,
        rust_log: &str,
        redis: Option<&str>,
    ) -> Binary {
        let port = free_port();
        let (dir, cfg) = config_file_with(env, port, threads, limits, redis);
        let log = dir.path().join("db-proxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_db-proxy"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("db-proxy exited early: {status}\n{text}");
            }
            assert!(Instant::now() < deadline, "db-proxy did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Binary {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, KiB (VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `within` for the process to exit; `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A TOML config for the binary against `env` (listening on `port`, `threads`, `limits` as
/// in [`Binary::start`]) in a new temporary directory; returns the directory and the file.
pub fn config_file(
    env: &TestEnv,
    port: u16,
    threads: u32,
    limits: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    config_file_with(env, port, threads, limits, None)
}

/// [`config_file`] with `redis` as the `[redis.*]` sections when given.
fn config_file_with(
    env: &TestEnv,
    port: u16,
    threads: u32,
    limits: &str,
    redis_sections: Option<&str>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let m = &env.config.master;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("db-proxy.toml");
    let mysql = |role: &str| {
        format!(
                "[mysql.{role}]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\nsocket = \"{}\"\n",
                m.host,
                m.port,
                m.database,
                m.user,
                m.password,
                m.socket.clone().unwrap_or_default()
            )
    };
    let redis = |name: &str| format!("[redis.{name}]\nport = {}\ndb = 1\n", env.redis_port);
    let redis = redis_sections.map_or_else(
        || {
            ["unread", "group_set", "token", "group_member"]
                .map(redis)
                .concat()
        },
        str::to_owned,
    );
    let text = format!(
            "[server]\nlisten = [\"127.0.0.1\"]\nport = {port}\nthreads = {threads}\naes_key = \"{AES_KEY}\"\n{}{}{redis}[limits]\n{limits}\n",
            mysql("master"),
            mysql("slave"),
        );
    std::fs::write(&cfg, text).unwrap();
    (dir, cfg)
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr` over HTTP/1.1; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, dechunk(body))
}

/// The body of a chunked HTTP/1.1 response (or `body` as is when it is not chunked).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if n == 0 {
            return out;
        }
        if after.len() < n {
            return body.to_owned();
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
}
