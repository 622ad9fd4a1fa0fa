//! Latency histogram and error counters (one [`Recorder`] per worker, merged at the end),
//! plus the shared live counters the progress line reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No reply within --timeout-ms.
    Timeout,
    /// The connection was closed (or could not be used).
    Closed,
    /// The reply had another command id than the command table says (or did not decode).
    WrongReply,
    /// The reply said the request failed (login result_code != 0, send msg_id 0, fetch short).
    BadResult,
    /// A direct backend call failed.
    Backend,
}

/// Error counts by kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Errors {
    pub timeout: u64,
    pub closed: u64,
    pub wrong_reply: u64,
    pub bad_result: u64,
    pub backend: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.timeout + self.closed + self.wrong_reply + self.bad_result + self.backend
    }

    fn add(&mut self, f: Failure) {
        match f {
            Failure::Timeout => self.timeout += 1,
            Failure::Closed => self.closed += 1,
            Failure::WrongReply => self.wrong_reply += 1,
            Failure::BadResult => self.bad_result += 1,
            Failure::Backend => self.backend += 1,
        }
    }

    fn merge(&mut self, o: &Errors) {
        self.timeout += o.timeout;
        self.closed += o.closed;
        self.wrong_reply += o.wrong_reply;
        self.bad_result += o.bad_result;
        self.backend += o.backend;
    }
}

/// Highest latency the histogram tracks exactly (larger values are clamped): 60 s in µs.
const MAX_US: u64 = 60_000_000;

/// One worker's measurements (successful latencies in µs, failures by kind).
#[derive(Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
    pub ok: u64,
    pub errors: Errors,
    /// Last failure seen, for the report.
    pub last_error: Option<String>,
}

impl Recorder {
    /// An empty recorder: 3 significant digits from 1 µs to 60 s. Clone it per worker.
    pub fn new() -> crate::common::Result<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_US, 3)
            .map_err(|e| format!("latency histogram: {e}"))?;
        Ok(Recorder {
            hist,
            ok: 0,
            errors: Errors::default(),
            last_error: None,
        })
    }

    pub fn success(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        self.hist.saturating_record(us);
        self.ok += 1;
    }

    pub fn failure(&mut self, f: Failure, detail: String) {
        self.errors.add(f);
        self.last_error = Some(detail);
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.errors.merge(&other.errors);
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }

    /// Latency at quantile `q` (0..=1) in ms.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
}

/// Counters shared by all workers for the live progress line.
#[derive(Default)]
pub struct Live {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    /// Set when the measured window starts; workers record only while it is set.
    pub measuring: AtomicBool,
    /// Set when the run is over; workers stop issuing requests.
    pub stop: AtomicBool,
}

impl Live {
    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn count(&self, ok: bool) {
        let c = if ok { &self.ok } else { &self.errors };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_recorders_give_quantiles_and_error_counts() {
        let base = Recorder::new().expect("histogram");
        let (mut a, mut b) = (base.clone(), base.clone());
        // 1..=1000 ms split over two workers.
        for ms in 1..=1000u64 {
            let r = if ms % 2 == 0 { &mut a } else { &mut b };
            r.success(Duration::from_millis(ms));
        }
        a.failure(Failure::Timeout, "t".into());
        b.failure(Failure::BadResult, "short page".into());
        b.failure(Failure::BadResult, "short page".into());
        a.merge(&b);
        assert_eq!(a.ok, 1000);
        assert_eq!(a.errors.timeout, 1);
        assert_eq!(a.errors.bad_result, 2);
        assert_eq!(a.errors.total(), 3);
        assert_eq!(a.last_error.as_deref(), Some("short page"));
        // 3 significant digits: within 0.1 %.
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(a.quantile_ms(0.5), 500.0), "{}", a.quantile_ms(0.5));
        assert!(near(a.quantile_ms(0.99), 990.0), "{}", a.quantile_ms(0.99));
        assert!(near(a.max_ms(), 1000.0), "{}", a.max_ms());
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut r = Recorder::new().expect("histogram");
        r.success(Duration::ZERO);
        r.success(Duration::from_secs(3600));
        assert_eq!(r.ok, 2);
        assert!(r.max_ms() >= 59_000.0, "{}", r.max_ms());
    }
}
