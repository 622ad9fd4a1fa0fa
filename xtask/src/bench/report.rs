//! The result of one run: one text line, or one JSON object with --json.

use serde::Serialize;

use super::stats::{Errors, Recorder};

/// Everything a run reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    /// "db-proxy (started by bench)", "db-proxy at HOST:PORT", "direct MariaDB/Redis",
    /// "in-process trivial server".
    pub target: String,
    pub conns: u32,
    pub depth: u32,
    pub users: u32,
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
    /// Direct runs: time per stage of the model's coalesced paths over the window.
    pub stages: Vec<StageReport>,
}

/// One stage of the model crate's coalesced paths over the measured window
/// (`dbproxy_model::StageTiming`).
#[derive(Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    /// Runs per second (batches; requests for a `queue` stage).
    pub runs_per_s: f64,
    /// Requests per run.
    pub items_per_run: f64,
    /// Mean duration of one run, ms.
    pub mean_ms: f64,
}

impl StageReport {
    /// The window's share of `t` (already a difference of two snapshots).
    pub fn new(t: &dbproxy_model::StageTiming, seconds: f64) -> StageReport {
        let runs = t.runs as f64;
        StageReport {
            name: t.name.clone(),
            runs_per_s: if seconds > 0.0 { runs / seconds } else { 0.0 },
            items_per_run: if t.runs > 0 {
                t.items as f64 / runs
            } else {
                0.0
            },
            mean_ms: t.mean().as_secs_f64() * 1e3,
        }
    }

    pub fn text(&self) -> String {
        format!(
            "  stage {:<32} runs/s={:<8.0} per run: requests={:<6.1} ms={:.3}",
            self.name, self.runs_per_s, self.items_per_run, self.mean_ms
        )
    }
}

impl Report {
    pub fn new(mode: &'static str, target: String, args: &super::options::Args) -> Report {
        Report {
            mode,
            target,
            conns: args.conns,
            depth: args.depth,
            users: args.users,
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
