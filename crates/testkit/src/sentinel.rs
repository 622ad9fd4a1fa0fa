//! A private Redis master, its replica and three Sentinels on free loopback ports, for the
//! tests of db-proxy behind Sentinel: a test kills the master and the sentinels promote the
//! replica.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::start_redis_with as start;

/// The master name the sentinels monitor.
pub const SERVICE: &str = "dbproxy-test";

/// A master, a replica and three sentinels; dropped = all killed, files removed.
pub struct SentinelSet {
    /// Ports of the master and the replica as started (the roles change at a failover).
    pub master_port: u16,
    pub replica_port: u16,
    /// Ports of the sentinels.
    pub sentinel_ports: Vec<u16>,
    dir: PathBuf,
    master: Option<Child>,
    others: Vec<Child>,
}

impl SentinelSet {
    /// Starts them and waits until the replica is in sync and every sentinel knows it and
    /// the other sentinels.
    pub fn start() -> SentinelSet {
        let n = crate::COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "dbproxy-sentinel-{}-{}-{n}",
            std::process::id(),
            crate::now_secs()
        ));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        // No 5 s pause before the first full sync of the replica.
        let (master, master_port) = start(&["--repl-diskless-sync-delay".into(), "0".into()]);
        let (replica, replica_port) = start(&[
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_port.to_string(),
        ]);
        let mut others = vec![replica];
        let mut sentinel_ports = Vec::new();
        for i in 0..3 {
            let conf = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 10000\n\
                     sentinel parallel-syncs {SERVICE} 1\n"
                ),
            )
            .expect("sentinel conf");
            let conf = conf.display().to_string();
            let (child, port) = start(&[conf, "--sentinel".into()]);
            sentinel_ports.push(port);
            others.push(child);
        }
        let set = SentinelSet {
            master_port,
            replica_port,
            sentinel_ports,
            dir,
            master: Some(master),
            others,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !set.sentinels_ready() {
            assert!(
                Instant::now() < deadline,
                "sentinels did not find each other"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        set
    }

    /// `host:port` of every sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    fn sentinels_ready(&self) -> bool {
        let synced =
            cli(self.replica_port, &["INFO", "replication"]).contains("master_link_status:up");
        synced
            && self.sentinel_ports.iter().all(|&p| {
                let info = cli(p, &["SENTINEL", "MASTER", SERVICE]);
                let field = |name: &str| {
                    let lines: Vec<&str> = info.lines().collect();
                    lines
                        .iter()
                        .position(|l| *l == name)
                        .and_then(|i| lines.get(i + 1))
                        .and_then(|v| v.parse::<u32>().ok())
                        .unwrap_or(0)
                };
                field("num-slaves") >= 1 && field("num-other-sentinels") >= 2
            })
    }

    /// The port the sentinels report as the master now.
    pub fn current_master_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinel_ports[0],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE],
        );
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }

    /// Stops the replica's process (SIGSTOP) or lets it go on (SIGCONT).
    pub fn pause_replica(&self, paused: bool) {
        if let Some(c) = self.others.first() {
            crate::signal(Some(c.id()), if paused { "STOP" } else { "CONT" });
        }
    }

    /// Kills the original master with SIGKILL (the sentinels then promote the replica).
    pub fn kill_master(&mut self) {
        if let Some(mut c) = self.master.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `redis-cli -p port args...`, its output ("" when it fails).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        self.kill_master();
        for c in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
