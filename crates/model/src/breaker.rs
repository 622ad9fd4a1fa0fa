//! Failing fast while a backend is known to be down: one circuit breaker per MySQL pool,
//! per Redis endpoint and for msfs.
//!
//! A breaker counts consecutive failures that mean "this backend is not answering", as its
//! user classifies them (the MySQL pools: no connection, the unit of work timed out, a broken
//! connection; Redis: a timeout or an I/O error; msfs: no connection or a timeout; never a refused statement, an error reply
//! or another backend's failure). After [`TRIP_AFTER`] in a row it opens: calls fail at once
//! with [`Error::Down`] instead of each waiting out its own timeout. While open, a background
//! task probes the backend every [`PROBE_EVERY`] (each probe bounded by the breaker's probe
//! timeout: long enough to open a new connection); the first probe it answers closes the
//! breaker. Results of calls admitted before an opening or a closing do not count after it. The outage is logged once when it opens, then as a summary of the
//! calls answered at once at most every [`SUMMARY_EVERY`], and once when it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Consecutive outage failures that open the breaker.
pub(crate) const TRIP_AFTER: u32 = 3;
/// Time between two probes while open.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Least time between two "still down" log lines.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// One probe of the backend: `true` when it answered.
pub(crate) type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

#[derive(Debug)]
struct State {
    /// Changes at every opening and closing: a result counts only for the period it was
    /// admitted in.
    generation: u64,
    /// Consecutive outage failures while closed.
    failures: u32,
    /// Open since then (`None`: closed).
    down_since: Option<Instant>,
    /// Calls answered with [`Error::Down`] since the last log line.
    failed_fast: u64,
    last_summary: Instant,
}

/// The breaker of one backend (see the module docs).
pub(crate) struct Breaker {
    name: String,
    probe: Probe,
    probe_timeout: Duration,
    state: Mutex<State>,
}

/// A call let through by [`Breaker::admit`]; hand it back to [`Breaker::record`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admitted {
    generation: u64,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A closed breaker for the backend called `name` in logs and errors, probed with
    /// `probe` (bounded by `probe_timeout`) while open.
    pub(crate) fn new(name: impl Into<String>, probe: Probe, probe_timeout: Duration) -> Arc<Self> {
        let name = name.into();
        metrics::gauge!(crate::metrics::BACKEND_DOWN, "backend" => name.clone()).set(0.0);
        metrics::counter!(crate::metrics::BACKEND_FAILED_FAST, "backend" => name.clone())
            .increment(0);
        Arc::new(Breaker {
            name,
            probe,
            probe_timeout,
            state: Mutex::new(State {
                generation: 0,
                failures: 0,
                down_since: None,
                failed_fast: 0,
                last_summary: Instant::now(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain counters: a panic elsewhere while held leaves them usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the breaker is open (the backend is known to be down).
    pub(crate) fn is_open(&self) -> bool {
        self.lock().down_since.is_some()
    }

    /// Run `work` unless the backend is known to be down; `outage` tells whether its result
    /// says the backend is not answering.
    pub(crate) async fn call<T>(
        self: &Arc<Self>,
        work: impl Future<Output = Result<T>>,
        outage: impl FnOnce(&Result<T>) -> bool,
    ) -> Result<T> {
        let admitted = self.admit()?;
        let out = work.await;
        let failed = outage(&out);
        self.record(admitted, failed.then(|| out.as_ref().err()).flatten());
        out
    }

    /// Let a call through, or [`Error::Down`] while the backend is known to be down.
    pub(crate) fn admit(&self) -> Result<Admitted> {
        let mut s = self.lock();
        let Some(since) = s.down_since else {
            return Ok(Admitted {
                generation: s.generation,
            });
        };
        let now = Instant::now();
        s.failed_fast += 1;
        metrics::counter!(crate::metrics::BACKEND_FAILED_FAST, "backend" => self.name.clone())
            .increment(1);
        if now.duration_since(s.last_summary) >= SUMMARY_EVERY {
            tracing::error!(
                backend = %self.name,
                down_for_ms = millis(now.duration_since(since)),
                answered_at_once = s.failed_fast,
                "backend still down; requests get the failure reply at once"
            );
            s.failed_fast = 0;
            s.last_summary = now;
        }
        Err(Error::Down {
            backend: self.name.clone(),
            since: now.duration_since(since),
        })
    }

    /// What an admitted call found: `Some(error)` when the backend did not answer.
    pub(crate) fn record(self: &Arc<Self>, admitted: Admitted, outage: Option<&Error>) {
        let mut s = self.lock();
        if admitted.generation != s.generation || s.down_since.is_some() {
            // Admitted before the last opening or closing: says nothing about now.
            return;
        }
        let Some(error) = outage else {
            s.failures = 0;
            return;
        };
        s.failures += 1;
        if s.failures < TRIP_AFTER {
            return;
        }
        drop(s);
        self.open(error);
    }

    /// Opens the breaker now (also without failures counted: a backend found down at start)
    /// and starts probing it.
    pub(crate) fn open(self: &Arc<Self>, error: &Error) {
        let mut s = self.lock();
        if s.down_since.is_some() {
            return;
        }
        let now = Instant::now();
        s.generation += 1;
        s.down_since = Some(now);
        s.failed_fast = 0;
        s.last_summary = now;
        drop(s);
        metrics::gauge!(crate::metrics::BACKEND_DOWN, "backend" => self.name.clone()).set(1.0);
        tracing::error!(
            backend = %self.name,
            %error,
            "backend down: requests get the failure reply at once until a probe succeeds"
        );
        let breaker = self.clone();
        tokio::spawn(async move { breaker.probe_until_back().await });
    }

    async fn probe_until_back(&self) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let answered = tokio::time::timeout(self.probe_timeout, (self.probe)())
                .await
                .unwrap_or(false);
            if !answered {
                continue;
            }
            let mut s = self.lock();
            let (since, failed_fast) = (s.down_since.take(), s.failed_fast);
            s.failures = 0;
            s.generation += 1;
            drop(s);
            metrics::gauge!(crate::metrics::BACKEND_DOWN, "backend" => self.name.clone()).set(0.0);
            tracing::warn!(
                backend = %self.name,
                down_for_ms = since.map_or(0, |t| millis(t.elapsed())),
                answered_at_once = failed_fast,
                "backend back"
            );
            return;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn outage() -> Result<()> {
        Err(Error::Timeout {
            what: "test".into(),
            after: Duration::from_millis(1),
        })
    }

    #[tokio::test]
    async fn opens_after_consecutive_outages_and_closes_when_a_probe_answers() {
        let up = Arc::new(AtomicBool::new(false));
        let probe: Probe = {
            let up = up.clone();
            Arc::new(move || {
                let up = up.clone();
                Box::pin(async move { up.load(Ordering::SeqCst) })
            })
        };
        let b = Breaker::new("test", probe, Duration::from_millis(50));
        let is_outage = |r: &Result<()>| matches!(r, Err(Error::Timeout { .. }));
        // Logical failures and successes do not count.
        for _ in 0..5 {
            let _ = b
                .call(
                    async { Err::<(), _>(Error::NotFound("x".into())) },
                    is_outage,
                )
                .await;
        }
        assert!(!b.is_open());
        for _ in 0..TRIP_AFTER - 1 {
            let _ = b.call(async { outage() }, is_outage).await;
        }
        let _ = b.call(async { Ok(()) }, is_outage).await;
        assert!(!b.is_open(), "a success in between resets the count");
        for _ in 0..TRIP_AFTER {
            let _ = b.call(async { outage() }, is_outage).await;
        }
        assert!(b.is_open());
        // Open: answered at once, the work is not even started.
        let started = AtomicBool::new(false);
        let r = b
            .call(
                async {
                    started.store(true, Ordering::SeqCst);
                    Ok(())
                },
                is_outage,
            )
            .await;
        assert!(matches!(r, Err(Error::Down { .. })), "{r:?}");
        assert!(!started.load(Ordering::SeqCst));
        assert!(r.as_ref().unwrap_err().is_unavailable());
        assert!(
            !r.unwrap_err().is_redis_outage(),
            "fast failures do not count"
        );
        // Probes that fail keep it open; the first that answers closes it.
        tokio::time::sleep(PROBE_EVERY * 3).await;
        assert!(b.is_open());
        up.store(true, Ordering::SeqCst);
        tokio::time::sleep(PROBE_EVERY * 3).await;
        assert!(!b.is_open());
        assert!(b.call(async { Ok(()) }, is_outage).await.is_ok());
    }

    #[tokio::test]
    async fn results_of_calls_admitted_before_a_closing_do_not_count() {
        let probe: Probe = Arc::new(|| Box::pin(async { true }));
        let b = Breaker::new("test", probe, Duration::from_millis(50));
        let stale: Vec<Admitted> = (0..TRIP_AFTER).map(|_| b.admit().unwrap()).collect();
        let error = Error::Timeout {
            what: "test".into(),
            after: Duration::from_millis(1),
        };
        for _ in 0..TRIP_AFTER {
            b.record(b.admit().unwrap(), Some(&error));
        }
        assert!(b.is_open());
        tokio::time::sleep(PROBE_EVERY * 3).await;
        assert!(!b.is_open(), "the probe answered");
        // Calls that were in flight through the outage end now: they do not reopen it.
        for a in stale {
            b.record(a, Some(&error));
        }
        assert!(!b.is_open());
    }
}
