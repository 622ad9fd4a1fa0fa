//! Request coalescing: concurrent calls of one kind share one round of statements.
//!
//! A [`Coalescer`] owns a bounded queue and a dispatcher task. Callers enqueue a request
//! and wait for its own result. The dispatcher takes everything queued (up to
//! `max_batch`) whenever one of its `parallel` slots is free and runs it as one batch.
//! Under light load a request runs alone at once (no added latency); under load, requests
//! queue while the slots are busy and the next batch takes them all, so MariaDB sees one
//! statement (or one transaction) for many requests.
//!
//! Bounds: the queue holds `capacity` requests (callers wait for room: backpressure),
//! at most `parallel` batches run at a time, and every batch's backend work is bounded by
//! the store's timeouts, so every caller gets an answer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

pub(crate) mod shards;
pub(crate) mod texts;
pub(crate) mod timing;

use crate::error::{Error, Result};
use timing::Timings;

struct Job<Req, Rsp> {
    req: Req,
    queued: Instant,
    reply: oneshot::Sender<Result<Rsp>>,
}

/// Sizing of one coalescer.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Batches running at the same time.
    pub parallel: usize,
    /// Requests waiting for a batch before callers have to wait for room.
    pub capacity: usize,
    /// Shared by the coalescers of one MySQL pool, one permit per pooled connection: a
    /// batch is closed only once it holds a permit, so requests that arrive while every
    /// connection is busy join it instead of waiting in a batch of their own.
    pub gate: Option<Arc<Semaphore>>,
}

impl Shape {
    /// The same shape, closing its batches only when `gate` has a permit.
    pub(crate) fn gated(mut self, gate: &Arc<Semaphore>) -> Self {
        self.gate = Some(gate.clone());
        self
    }
}

/// Queue + dispatcher for one kind of request (see the module docs).
pub(crate) struct Coalescer<Req, Rsp> {
    name: &'static str,
    tx: mpsc::Sender<Job<Req, Rsp>>,
}

/// A batch's permit of its pool's gate (see [`Shape::gate`]), held while the batch runs.
pub(crate) struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    /// Give the permit back before the batch ends, once its last MySQL statement is done, so
    /// the next batch can start while this one finishes other work (Redis).
    pub(crate) fn release(&mut self) {
        self.0 = None;
    }
}

impl<Req: Send + 'static, Rsp: Send + 'static> Coalescer<Req, Rsp> {
    /// Start the dispatcher on the current tokio runtime. `run` gets the requests of one
    /// batch (1..=max_batch, in arrival order) and returns one result per request, in the
    /// same order. The dispatcher stops when the coalescer is dropped. Queue waits and
    /// batch runs are timed in `timings` as `<name>: queue` and `<name>: batch`.
    pub(crate) fn spawn<F, Fut>(name: &'static str, shape: Shape, timings: &Timings, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<Rsp>>> + Send + 'static,
    {
        Self::spawn_held(name, shape, timings, move |reqs, held| {
            let batch = run(reqs);
            async move {
                let _held = held;
                batch.await
            }
        })
    }

    /// [`Self::spawn`] for a `run` that gives its gate permit back early ([`Held::release`]).
    pub(crate) fn spawn_held<F, Fut>(
        name: &'static str,
        shape: Shape,
        timings: &Timings,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<Req>, Held) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<Rsp>>> + Send + 'static,
    {
        let max_batch = shape.max_batch.max(1);
        let (tx, mut rx) = mpsc::channel::<Job<Req, Rsp>>(shape.capacity.max(max_batch));
        let slots = Arc::new(Semaphore::new(shape.parallel.max(1)));
        let gate = shape.gate.clone();
        let run = Arc::new(run);
        let (queue_stage, batch_stage) = (
            timings.stage(&format!("{name}: queue")),
            timings.stage(&format!("{name}: batch")),
        );
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(max_batch);
            loop {
                // Take a slot first: while every slot is busy, requests pile up in the
                // queue and the next batch takes them together.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                if rx.recv_many(&mut jobs, max_batch).await == 0 {
                    break;
                }
                let connection = match &gate {
                    Some(gate) => match gate.clone().acquire_owned().await {
                        Ok(permit) => Some(permit),
                        Err(_) => break,
                    },
                    None => None,
                };
                // Whatever queued while waiting for the gate joins this batch.
                while jobs.len() < max_batch {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let batch = std::mem::replace(&mut jobs, Vec::with_capacity(max_batch));
                let run = run.clone();
                let (queue_stage, batch_stage) = (queue_stage.clone(), batch_stage.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let start = Instant::now();
                    let waited: Duration = batch
                        .iter()
                        .map(|j| start.saturating_duration_since(j.queued))
                        .sum();
                    let (reqs, replies): (Vec<Req>, Vec<_>) =
                        batch.into_iter().map(|j| (j.req, j.reply)).unzip();
                    let n = reqs.len();
                    queue_stage.record_sum(n as u64, n, waited);
                    let results = run(reqs, Held(connection)).await;
                    batch_stage.record(n, start.elapsed());
                    let mut results = results.into_iter();
                    for reply in replies {
                        let r = results.next().unwrap_or_else(|| {
                            Err(Error::Internal(format!(
                                "{name}: batch of {n} returned too few results"
                            )))
                        });
                        // The caller may be gone (its connection closed): nothing to do.
                        let _ = reply.send(r);
                    }
                });
            }
            tracing::debug!(coalescer = name, "dispatcher stopped");
        });
        Coalescer { name, tx }
    }

    /// Enqueue `req` and wait for its result.
    pub(crate) async fn call(&self, req: Req) -> Result<Rsp> {
        let started = Instant::now();
        let out = self.wait(req).await;
        crate::stages::note("batch", self.name, started.elapsed());
        out
    }

    async fn wait(&self, req: Req) -> Result<Rsp> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                req,
                queued: Instant::now(),
                reply,
            })
            .await
            .map_err(|_| Error::Internal(format!("{}: dispatcher stopped", self.name)))?;
        rx.await.map_err(|_| {
            Error::Internal(format!(
                "{}: batch ended without an answer (worker failed)",
                self.name
            ))
        })?
    }
}

/// One result per request from a whole-batch outcome: `Ok(values)` (one per request, in
/// order) or the same error, shared, for every request.
pub(crate) fn fan_out<T>(n: usize, outcome: Result<Vec<T>>) -> Vec<Result<T>> {
    match outcome {
        Ok(values) => values.into_iter().map(Ok).collect(),
        Err(e) => e.fan_out(n).into_iter().map(Err).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_reach_their_callers_and_load_forms_batches() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
        let seen2 = seen.clone();
        let timings = Timings::default();
        let c = Arc::new(Coalescer::spawn(
            "test",
            Shape {
                max_batch: 8,
                parallel: 1,
                capacity: 64,
                gate: None,
            },
            &timings,
            move |reqs: Vec<u32>| {
                let seen = seen2.clone();
                async move {
                    if let Ok(mut s) = seen.lock() {
                        s.push(reqs.len());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    reqs.into_iter().map(|r| Ok(r * 10)).collect()
                }
            },
        ));
        let mut tasks = Vec::new();
        for i in 0..40u32 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move { (i, c.call(i).await) }));
        }
        for t in tasks {
            let (i, r) = t.await.expect("task");
            assert_eq!(r.expect("result"), i * 10);
        }
        let sizes = seen.lock().expect("lock").clone();
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(sizes.iter().all(|&n| n <= 8), "{sizes:?}");
        assert!(sizes.len() < 40, "no batching happened: {sizes:?}");
        // Every request's wait and every batch were timed.
        let stages = timings.snapshot();
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["test: queue", "test: batch"]);
        assert_eq!((stages[0].runs, stages[0].items), (40, 40));
        assert_eq!(stages[1].runs as usize, sizes.len());
        assert_eq!(stages[1].items, 40);
        let slept = std::time::Duration::from_millis(5) * sizes.len() as u32;
        assert!(
            stages[1].total >= slept,
            "{:?} < {slept:?}",
            stages[1].total
        );
    }

    #[tokio::test]
    async fn a_shared_gate_bounds_running_batches_and_lets_them_grow() {
        // Two coalescers with 4 slots each behind one gate of 1 permit: never two batches
        // at once, and requests queued meanwhile join the next batch.
        let gate = Arc::new(Semaphore::new(1));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sizes = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
        let timings = Timings::default();
        let make = |name: &'static str| {
            let (running, peak, sizes) = (running.clone(), peak.clone(), sizes.clone());
            Arc::new(Coalescer::spawn(
                name,
                Shape {
                    max_batch: 16,
                    parallel: 4,
                    capacity: 64,
                    gate: None,
                }
                .gated(&gate),
                &timings,
                move |reqs: Vec<u32>| {
                    let (running, peak, sizes) = (running.clone(), peak.clone(), sizes.clone());
                    async move {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(now, SeqCst);
                        if let Ok(mut s) = sizes.lock() {
                            s.push(reqs.len());
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        running.fetch_sub(1, SeqCst);
                        reqs.into_iter().map(|r| Ok(r + 1)).collect()
                    }
                },
            ))
        };
        let (a, b) = (make("a"), make("b"));
        let mut tasks = Vec::new();
        for i in 0..60u32 {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { (i, c.call(i).await) }));
        }
        for t in tasks {
            let (i, r) = t.await.expect("task");
            assert_eq!(r.expect("result"), i + 1);
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 1);
        let sizes = sizes.lock().expect("lock").clone();
        assert_eq!(sizes.iter().sum::<usize>(), 60);
        assert!(
            sizes.len() <= 8,
            "batches did not grow behind the gate: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn a_short_result_list_is_an_error_not_a_hang() {
        let c = Coalescer::spawn(
            "short",
            Shape {
                max_batch: 4,
                parallel: 1,
                capacity: 4,
                gate: None,
            },
            &Timings::default(),
            |_reqs: Vec<u32>| async move { Vec::<Result<u32>>::new() },
        );
        let err = c.call(1).await.expect_err("no result");
        assert!(err.to_string().contains("too few results"), "{err}");
    }

    #[test]
    fn fan_out_copies_errors() {
        let v: Vec<Result<u32>> = fan_out(3, Err(Error::NotFound("x".into())));
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(
            |r| matches!(r.as_ref().map_err(Error::inner), Err(Error::NotFound(s)) if s == "x")
        ));
        let v = fan_out(2, Ok(vec![1u32, 2]));
        assert_eq!(
            v.into_iter().map(|r| r.ok()).collect::<Vec<_>>(),
            vec![Some(1), Some(2)]
        );
    }
}
