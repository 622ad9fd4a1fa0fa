//! A private `mariadbd` on a free loopback port, with its own data directory: a test can
//! kill it (-9), freeze it (SIGSTOP) and start it again without touching the shared server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A private MariaDB server; dropped = killed and its data directory removed.
pub struct PrivateMariadb {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Server options beyond the defaults (every start uses them).
    extra: Vec<String>,
}

impl PrivateMariadb {
    /// Creates a data directory (root without a password over TCP) and starts the server.
    pub fn start() -> PrivateMariadb {
        Self::start_with(&[])
    }

    /// [`PrivateMariadb::start`] with more server options (`--server-id=2`, `--log-bin`...).
    pub fn start_with(extra: &[&str]) -> PrivateMariadb {
        let n = crate::COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "dbproxy-mariadb-{}-{}-{n}",
            std::process::id(),
            crate::now_secs()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create mariadb dir");
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run mariadb-install-db (is MariaDB installed?)");
        assert!(install.success(), "mariadb-install-db failed");
        let mut db = PrivateMariadb {
            port: 0,
            dir,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        for _attempt in 0..5 {
            db.port = free_port();
            if db.spawn() {
                return db;
            }
        }
        panic!(
            "private mariadbd did not start (log: {})",
            db.log().display()
        );
    }

    /// Admin URL (root, no password, TCP).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// The server's error log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> bool {
        let d = &self.dir;
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", self.log().display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=200",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.answers() {
                return true;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    break; // port taken meanwhile, or a start failure
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        false
    }

    /// Whether the server answers `SELECT 1`.
    pub fn answers(&self) -> bool {
        Command::new("mariadb")
            .args(["-h127.0.0.1", "-uroot", "--connect-timeout=1"])
            .arg(format!("-P{}", self.port))
            .args(["-e", "SELECT 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Kills the server with SIGKILL (no shutdown, as a crash or the OOM killer would).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data (InnoDB recovers what it wrote).
    pub fn restart(&mut self) {
        self.kill9();
        assert!(
            self.spawn(),
            "private mariadbd did not restart (log: {})",
            self.log().display()
        );
    }

    /// Runs `sql` through the mariadb client as root; returns what it printed (tab-separated,
    /// no column names). Panics when the client fails.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args(["-h127.0.0.1", "-uroot", "--connect-timeout=5", "-N", "-B"])
            .arg(format!("-P{}", self.port))
            .args(["-e", sql])
            .output()
            .expect("run the mariadb client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A primary (binary log, server id 1) and an asynchronous replica (server id 2) that
    /// replicates everything the primary writes from then on, by GTID.
    pub fn replication_pair() -> (PrivateMariadb, PrivateMariadb) {
        let binlog = ["--log-bin=mysql-bin", "--binlog-format=ROW"];
        let primary = Self::start_with(&[&["--server-id=1"][..], &binlog[..]].concat());
        let replica = Self::start_with(&[&["--server-id=2"][..], &binlog[..]].concat());
        primary.sql(
            "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'; \
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
        );
        replica.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = 'repl', MASTER_PASSWORD = 'repl', MASTER_USE_GTID = slave_pos; \
             START SLAVE",
            primary.port
        ));
        replica.wait_caught_up(&primary);
        (primary, replica)
    }

    /// Waits (at most 30 s) until this replica has applied everything `primary` has written.
    pub fn wait_caught_up(&self, primary: &PrivateMariadb) {
        let pos = primary.sql("SELECT @@gtid_binlog_pos");
        let pos = pos.trim();
        let reached = self.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"));
        assert_eq!(
            reached.trim(),
            "0",
            "replica did not reach {pos}: {}",
            self.sql("SHOW SLAVE STATUS\\G")
        );
    }

    /// Stops the process (SIGSTOP): connections stay open and nothing is answered.
    pub fn freeze(&self) {
        crate::signal(self.pid(), "STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        crate::signal(self.pid(), "CONT");
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        self.thaw();
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
