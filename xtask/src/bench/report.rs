//! The result of one run: one text line, or one JSON object with --json.

use serde::Serialize;

use super::stats::{Errors, Recorder};

/// Everything a run reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    /// How the server was configured: `toml` (config/db-proxy.toml), `legacy conf` (a
    /// shipped-style dbproxyserver.conf), `direct` (no server), `external` (--addr).
    pub config: &'static str,
    /// "db-proxy (started by bench)", "db-proxy at HOST:PORT", "direct MariaDB/Redis",
    /// "in-process trivial server".
    pub target: String,
    pub conns: u32,
    pub depth: u32,
    pub users: u32,
    /// The built population run on (`--population`), `None` for the bench's own preparation.
    pub population: Option<String>,
    /// Length of the measured window, s.
    pub seconds: f64,
    /// Successful requests in the window.
    pub requests: u64,
    /// Failed requests in the window.
    pub errors: u64,
    pub errors_by_kind: Errors,
    /// Successful requests per second.
    pub req_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// utime + stime of the db-proxy process over the window, s (when the bench started it).
    pub server_cpu_s: Option<f64>,
    /// VmHWM of the db-proxy process at the end of the window, MiB (when the bench started it).
    pub server_peak_rss_mib: Option<f64>,
    /// utime + stime of the bench process itself over the window, s (includes the in-process
    /// server in ceiling mode and the model calls in direct mode).
    pub bench_cpu_s: Option<f64>,
    /// utime + stime of the local MariaDB server over the window, s (`None` when it runs
    /// elsewhere): with the others, shows which process uses the two cores.
    pub mariadb_cpu_s: Option<f64>,
    /// utime + stime of the local redis-server processes over the window, s.
    pub redis_cpu_s: Option<f64>,
    /// One of the failures, for diagnosis.
    pub last_error: Option<String>,
    /// Time per stage of the model's coalesced paths: over the window (direct runs) or over
    /// the server's run (db-proxy started by the bench, read from its log).
    pub stages: Vec<StageReport>,
}

/// One stage of the model crate's coalesced paths (`dbproxy_model::StageTiming`).
#[derive(Debug, Serialize, PartialEq)]
pub struct StageReport {
    pub name: String,
    /// Times it ran (batches; requests for a `queue` stage).
    pub runs: u64,
    /// Requests per run.
    pub items_per_run: f64,
    /// Mean duration of one run, ms.
    pub mean_ms: f64,
}

impl StageReport {
    /// From `t` (for a window: the difference of two snapshots).
    pub fn new(t: &dbproxy_model::StageTiming) -> StageReport {
        StageReport {
            name: t.name.clone(),
            runs: t.runs,
            items_per_run: if t.runs > 0 {
                t.items as f64 / t.runs as f64
            } else {
                0.0
            },
            mean_ms: t.mean().as_secs_f64() * 1e3,
        }
    }

    /// From one JSON line of db-proxy's log: the `stage timing since start` event it writes
    /// for every stage when it stops. `None` for any other line.
    pub fn from_log_line(line: &str) -> Option<StageReport> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let f = v.get("fields")?;
        if f.get("message")?.as_str()? != "stage timing since start" {
            return None;
        }
        let number = |key: &str| -> Option<f64> {
            let x = f.get(key)?;
            x.as_f64().or_else(|| x.as_str()?.parse().ok())
        };
        Some(StageReport {
            name: f.get("stage")?.as_str()?.to_owned(),
            runs: f.get("runs")?.as_u64()?,
            items_per_run: number("requests_per_run")?,
            mean_ms: number("mean_ms")?,
        })
    }

    pub fn text(&self) -> String {
        format!(
            "  stage {:<32} runs={:<9} per run: requests={:<6.1} ms={:.3}",
            self.name, self.runs, self.items_per_run, self.mean_ms
        )
    }
}

impl Report {
    pub fn new(mode: &'static str, target: String, args: &super::options::Args) -> Report {
        let config = if args.direct || args.mode == super::options::Mode::Ceiling {
            "direct"
        } else if args.addr.is_some() {
            "external"
        } else if args.legacy_conf {
            "legacy conf"
        } else {
            "toml"
        };
        Report {
            mode,
            config,
            target,
            conns: args.conns,
            depth: args.depth,
            users: args.users,
            population: args.population.clone(),
            seconds: 0.0,
            requests: 0,
            errors: 0,
            errors_by_kind: Errors::default(),
            req_per_s: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            server_cpu_s: None,
            server_peak_rss_mib: None,
            bench_cpu_s: None,
            mariadb_cpu_s: None,
            redis_cpu_s: None,
            last_error: None,
            stages: Vec::new(),
        }
    }

    /// Fills the request figures from the merged recorder and the window length.
    pub fn fill(&mut self, rec: &Recorder, seconds: f64) {
        self.seconds = seconds;
        self.requests = rec.ok;
        self.errors = rec.errors.total();
        self.errors_by_kind = rec.errors;
        self.req_per_s = if seconds > 0.0 {
            rec.ok as f64 / seconds
        } else {
            0.0
        };
        if rec.ok > 0 {
            self.p50_ms = rec.quantile_ms(0.50);
            self.p99_ms = rec.quantile_ms(0.99);
            self.max_ms = rec.max_ms();
        }
        self.last_error.clone_from(&rec.last_error);
    }

    pub fn text(&self) -> String {
        let mut line = format!(
            "mode={} conns={} depth={} seconds={:.1} requests={} errors={} req/s={:.0} \
             p50={:.3}ms p99={:.3}ms max={:.3}ms",
            self.mode,
            self.conns,
            self.depth,
            self.seconds,
            self.requests,
            self.errors,
            self.req_per_s,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        );
        if let Some(p) = &self.population {
            line.push_str(&format!(" population={p}"));
        }
        if let Some(c) = self.server_cpu_s {
            line.push_str(&format!(" server_cpu={c:.2}s"));
        }
        if let Some(r) = self.server_peak_rss_mib {
            line.push_str(&format!(" server_peak_rss={r:.1}MiB"));
        }
        if let Some(c) = self.bench_cpu_s {
            line.push_str(&format!(" bench_cpu={c:.2}s"));
        }
        if let Some(c) = self.mariadb_cpu_s {
            line.push_str(&format!(" mariadb_cpu={c:.2}s"));
        }
        if let Some(c) = self.redis_cpu_s {
            line.push_str(&format!(" redis_cpu={c:.2}s"));
        }
        line.push_str(&format!(" target=\"{}\"", self.target));
        if self.errors > 0 {
            let e = &self.errors_by_kind;
            line.push_str(&format!(
                " (timeout {}, closed {}, wrong reply {}, bad result {}, backend {}; last: {})",
                e.timeout,
                e.closed,
                e.wrong_reply,
                e.bad_result,
                e.backend,
                self.last_error.as_deref().unwrap_or("-")
            ));
        }
        line
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_lines_of_the_server_log_are_read_and_others_skipped() {
        let line = r#"{"timestamp":"2026-11-28T19:40:00Z","level":"INFO","fields":{"message":"stage timing since start","stage":"list_single: rows","runs":795,"requests_per_run":"16.0","mean_ms":"2.803"},"target":"db_proxy::app"}"#;
        assert_eq!(
            StageReport::from_log_line(line),
            Some(StageReport {
                name: "list_single: rows".into(),
                runs: 795,
                items_per_run: 16.0,
                mean_ms: 2.803,
            })
        );
        let other = r#"{"level":"INFO","fields":{"message":"db-proxy stopped"}}"#;
        assert_eq!(StageReport::from_log_line(other), None);
        assert_eq!(StageReport::from_log_line("not json"), None);
    }
}
