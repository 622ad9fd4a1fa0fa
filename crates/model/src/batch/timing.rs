//! Where the time of the coalesced paths goes, per stage: how often it ran, for how many
//! requests, and how long it took in total. Always on: a stage costs a few relaxed atomic
//! adds and one clock read per batch (per request for queue waits).
//!
//! Every coalescer (see [`crate::batch`]) has two stages, `<name>: queue` (each request's
//! wait from its call to the start of its batch: queue, slot and pool gate) and
//! `<name>: batch` (each batch's whole run); batches with distinct backend steps add one
//! stage per step, e.g. `store_single: transaction`. Read them with [`crate::Store::timings`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Counters of one stage.
pub(crate) struct Stage {
    name: String,
    runs: AtomicU64,
    items: AtomicU64,
    total_ns: AtomicU64,
    /// Its histograms (time, batch size), taken from the recorder at the first run: the
    /// recorder must be installed before the store starts working.
    histograms: OnceLock<(metrics::Histogram, metrics::Histogram)>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Stage {
    /// One run of the stage that served `items` requests and took `took`.
    pub(crate) fn record(&self, items: usize, took: Duration) {
        self.record_sum(1, items, took);
    }

    /// `runs` runs serving `items` requests, `took` in all.
    pub(crate) fn record_sum(&self, runs: u64, items: usize, took: Duration) {
        self.runs.fetch_add(runs, Ordering::Relaxed);
        self.items
            .fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(runs) = usize::try_from(runs).ok().filter(|&r| r > 0) {
            let (seconds, size) = self.histograms.get_or_init(|| {
                let stage = self.name.clone();
                (
                    metrics::histogram!(crate::metrics::STAGE_SECONDS, "stage" => stage.clone()),
                    metrics::histogram!(crate::metrics::STAGE_BATCH_SIZE, "stage" => stage),
                )
            });
            seconds.record_many(took.as_secs_f64() / runs as f64, runs);
            size.record_many(items as f64 / runs as f64, runs);
        }
    }

    /// Run `work` as one run of this stage serving `items` requests.
    pub(crate) async fn time<T>(&self, items: usize, work: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = work.await;
        self.record(items, start.elapsed());
        out
    }
}

/// The stages of one [`crate::Store`], in the order they were registered.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    stages: Mutex<Vec<Arc<Stage>>>,
}

impl Timings {
    /// The stage called `name` (registered on first use; the same one afterwards).
    pub(crate) fn stage(&self, name: &str) -> Arc<Stage> {
        let mut stages = self.stages.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stages.iter().find(|s| s.name == name) {
            return s.clone();
        }
        let s = Arc::new(Stage {
            name: name.to_owned(),
            runs: AtomicU64::new(0),
            items: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            histograms: OnceLock::new(),
        });
        stages.push(s.clone());
        s
    }

    /// Current counters of every stage.
    pub(crate) fn snapshot(&self) -> Vec<StageTiming> {
        let stages = self.stages.lock().unwrap_or_else(|p| p.into_inner());
        stages
            .iter()
            .map(|s| StageTiming {
                name: s.name.clone(),
                runs: s.runs.load(Ordering::Relaxed),
                items: s.items.load(Ordering::Relaxed),
                total: Duration::from_nanos(s.total_ns.load(Ordering::Relaxed)),
            })
            .collect()
    }
}

/// Counters of one stage since the [`crate::Store`] connected (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTiming {
    /// `<coalescer>: <step>`, e.g. `list_single: pages`.
    pub name: String,
    /// Times the stage ran (batches; requests for a `queue` stage).
    pub runs: u64,
    /// Requests those runs served.
    pub items: u64,
    /// Time spent in those runs, summed.
    pub total: Duration,
}

impl StageTiming {
    /// What happened between `earlier` (a snapshot of the same stage) and `self`.
    pub fn since(&self, earlier: &StageTiming) -> StageTiming {
        StageTiming {
            name: self.name.clone(),
            runs: self.runs.saturating_sub(earlier.runs),
            items: self.items.saturating_sub(earlier.items),
            total: self.total.saturating_sub(earlier.total),
        }
    }

    /// Mean duration of one run (zero when it never ran).
    pub fn mean(&self) -> Duration {
        if self.runs == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.total.as_secs_f64() / self.runs as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stages_add_up_and_keep_their_order() {
        let t = Timings::default();
        let a = t.stage("a: batch");
        let b = t.stage("b: queue");
        a.record(3, Duration::from_millis(2));
        a.record(5, Duration::from_millis(4));
        b.record_sum(4, 4, Duration::from_millis(8));
        assert!(Arc::ptr_eq(&a, &t.stage("a: batch")), "one stage per name");
        let before = t.snapshot();
        let v = t.stage("a: batch").time(2, async { 7 }).await;
        assert_eq!(v, 7);
        let after = t.snapshot();
        assert_eq!(after[0].name, "a: batch");
        assert_eq!((after[0].runs, after[0].items), (3, 10));
        assert_eq!(after[1].name, "b: queue");
        assert_eq!(after[1].mean(), Duration::from_millis(2));
        assert_eq!(before[0].mean(), Duration::from_millis(3));
        let delta = after[0].since(&before[0]);
        assert_eq!((delta.runs, delta.items), (1, 2));
        assert!(delta.total < Duration::from_millis(100));
        assert_eq!(after[1].since(&before[1]).mean(), Duration::ZERO);
    }
}
