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
//! the [`crate::Store`] timeouts, so every caller gets an answer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::timing::Timings;

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
                            Err(Error::Invalid(format!(
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
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                req,
                queued: Instant::now(),
                reply,
            })
            .await
            .map_err(|_| Error::Invalid(format!("{}: dispatcher stopped", self.name)))?;
        rx.await.map_err(|_| {
            Error::Invalid(format!(
                "{}: batch ended without an answer (worker failed)",
                self.name
            ))
        })?
    }
}

/// One result per request from a whole-batch outcome: `Ok(values)` (one per request, in
/// order) or the same error, copied, for every request.
pub(crate) fn fan_out<T>(n: usize, outcome: Result<Vec<T>>) -> Vec<Result<T>> {
    match outcome {
        Ok(values) => values.into_iter().map(Ok).collect(),
        Err(e) => {
            let mut out: Vec<Result<T>> = (1..n).map(|_| Err(e.duplicate())).collect();
            out.push(Err(e));
            out
        }
    }
}

/// Statement sizes a batch is padded to, so that each batched statement has one of a few
/// fixed texts and stays prepared on the connection.
pub(crate) const BUCKETS: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// Most requests one batch can hold: the largest bucket.
pub(crate) const MAX_BATCH: usize = BUCKETS[BUCKETS.len() - 1];

/// `(part_0) UNION ALL (part_1) ...`: `n` copies of `part`, where `{k}` becomes the copy's
/// index (a literal tag telling which request a row answers).
pub(crate) fn tagged_union(part: &str, n: usize) -> String {
    (0..n)
        .map(|k| format!("({})", part.replace("{k}", &k.to_string())))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// One statement text per bucket size, built once: batched statements are padded to a
/// bucket so their text is one of a few and stays prepared on each connection.
pub(crate) struct BucketTexts {
    sizes: &'static [usize],
    texts: Vec<String>,
}

impl BucketTexts {
    /// Texts `build(n)` for every size in [`BUCKETS`].
    pub(crate) fn new(build: impl Fn(usize) -> String) -> Self {
        Self::with_sizes(&BUCKETS, build)
    }

    /// Texts `build(n)` for every size in `sizes` (ascending, not empty).
    pub(crate) fn with_sizes(sizes: &'static [usize], build: impl Fn(usize) -> String) -> Self {
        BucketTexts {
            sizes,
            texts: sizes.iter().map(|&n| build(n)).collect(),
        }
    }

    /// The text for `n` items and the padded size it expects: the smallest size holding `n`
    /// (the largest when none does; callers split their items into chunks of at most that).
    pub(crate) fn for_len(&self, n: usize) -> (&str, usize) {
        let i = self
            .sizes
            .iter()
            .position(|&b| b >= n)
            .unwrap_or(self.sizes.len().saturating_sub(1));
        match (self.texts.get(i), self.sizes.get(i)) {
            (Some(text), Some(&b)) => (text, b),
            _ => ("", 0),
        }
    }
}

/// Statements over a sharded table family with one part per shard, each part taking a list
/// of ids: `part(0) UNION ALL ... UNION ALL part(7)`, where `{in}` in a part becomes `b`
/// markers `?, ?, ...` (b in [`BUCKETS`]). Unused markers are bound to a value that matches
/// nothing. The text depends on `b` only, so each stays prepared on the connection.
///
/// Against [`ShardSlots`] (one part per id): MariaDB's cost is mostly per part, so eight
/// list parts are cheaper for many ids and dearer for a few (measured from the `mariadb`
/// CLI for newest-message reads: ~30 µs per slot part, ~45 µs per list part plus ~9 µs per
/// id in it).
pub(crate) struct ShardLists {
    texts: Vec<String>,
}

impl ShardLists {
    /// Texts for every bucket size from `part(shard)`, which must contain `{in}` once.
    pub(crate) fn new(part: impl Fn(usize) -> String) -> Self {
        let parts: Vec<String> = (0..8).map(part).collect();
        let texts = BUCKETS
            .iter()
            .map(|&b| {
                let markers = vec!["?"; b].join(", ");
                parts
                    .iter()
                    .map(|p| format!("({})", p.replace("{in}", &markers)))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ")
            })
            .collect();
        ShardLists { texts }
    }

    /// The statements that read items of the given shards (0..8): rounds of at most 32 items
    /// per shard; in each, `items` lists the item bound to every marker in text order
    /// (shard by shard, `None` = padding).
    pub(crate) fn plan(&self, shards: &[usize]) -> Vec<SlotPlan<'_>> {
        shard_rounds(shards, &BUCKETS)
            .into_iter()
            .map(|round| {
                let i = BUCKETS.iter().position(|&b| b == round.k).unwrap_or(0);
                SlotPlan {
                    sql: self.texts[i].as_str().into(),
                    prepared: true,
                    items: round.layout,
                }
            })
            .collect()
    }
}

/// Items (given by their shard, 0..8) in rounds of at most `sizes`' largest per shard; each
/// round's `k` is the smallest of `sizes` holding its fullest shard, and `layout[s * k + j]`
/// the item in place j of shard s.
fn shard_rounds(shards: &[usize], sizes: &[usize]) -> Vec<SlotRound> {
    let max_k = sizes.last().copied().unwrap_or(1);
    let mut per_shard: [Vec<usize>; 8] = Default::default();
    for (i, &s) in shards.iter().enumerate() {
        per_shard[s % 8].push(i);
    }
    let most = per_shard.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    let mut start = 0;
    while start < most {
        let in_round = |v: &Vec<usize>| v.len().saturating_sub(start).min(max_k);
        let widest = per_shard.iter().map(in_round).max().unwrap_or(0);
        let k = sizes
            .iter()
            .copied()
            .find(|&k| k >= widest)
            .unwrap_or(max_k);
        let mut layout = vec![None; 8 * k];
        for (s, items) in per_shard.iter().enumerate() {
            for (j, &item) in items.iter().skip(start).take(k).enumerate() {
                layout[s * k + j] = Some(item);
            }
        }
        out.push(SlotRound { k, layout });
        start += max_k;
    }
    out
}

/// Slots per shard of a [`ShardSlots`] statement.
const SLOT_SIZES: [usize; 4] = [1, 2, 4, 8];

/// Statements over a sharded table family that answer many ids at once with fixed texts:
/// `K` parenthesised parts per shard (`K` in 1, 2, 4, 8), `(s0,slot0) UNION ALL (s0,slot1)
/// ... (s7,slot K-1)`, where `{k}` in a part becomes the slot's tag `s * K + j`. Unused
/// slots are bound to values that match nothing. The text depends on `K` only, so each
/// stays prepared on the connection.
pub(crate) struct ShardSlots {
    /// What an unused slot costs MariaDB: decides when a one-off text is cheaper.
    padding: Padding,
    texts: Vec<String>,
    /// One part alone per shard (tag 0): for a single item, no padding probes at all.
    singles: Vec<String>,
    /// The parts, `{k}` not yet replaced (for one-off exact texts).
    parts: Vec<String>,
}

/// What MariaDB spends on a padding slot of a [`ShardSlots`] text, against a real one.
/// A one-off text has a fixed cost of its own: MariaDB parses and prepares it and closes it
/// again (~95 µs for a short text plus ~8 µs per part, from the `mariadb` CLI), and it takes
/// two more round trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Padding {
    /// About as much as a real slot (an index probe that finds nothing, ~14 against ~16 µs
    /// for a newest-message part): a one-off text pays once padding would be more than half
    /// of a round's parts.
    Probe,
    /// A fraction of a real slot (the part stops before reading, as `LIMIT 0` does: ~8
    /// against ~32 µs for a 20-row page part): a one-off text pays only once the padding
    /// outweighs its fixed cost, i.e. more than 15 padding parts beyond one per item
    /// (2 pages: padded up to 2 slots per shard; 15 pages: padded with 4 slots per shard,
    /// 552 against 695 µs as a one-off; one-off with 8).
    Stop,
}

impl Padding {
    /// Whether a one-off text of exactly `real` items costs less than the fixed text with
    /// `padding` unused slots.
    fn one_off_pays(self, real: usize, padding: usize) -> bool {
        match self {
            Padding::Probe => padding > real,
            Padding::Stop => padding > 15 + real,
        }
    }
}

/// One statement of a [`ShardSlots`] read: its text, whether that text is one of the fixed
/// ones (kept prepared) or a one-off, and `items[tag]`: the item a row tagged `tag` answers
/// (`None`: a padding slot, bound to values that match nothing).
pub(crate) struct SlotPlan<'a> {
    pub sql: std::borrow::Cow<'a, str>,
    pub prepared: bool,
    pub items: Vec<Option<usize>>,
}

/// One statement's worth of items: `layout[s * k + j]` is the item in slot j of shard s.
pub(crate) struct SlotRound {
    pub k: usize,
    pub layout: Vec<Option<usize>>,
}

impl ShardSlots {
    pub(crate) fn new(parts: &[&str; 8], padding: Padding) -> Self {
        let texts = SLOT_SIZES
            .iter()
            .map(|&k| {
                let mut sql = String::new();
                for (s, part) in parts.iter().enumerate() {
                    for j in 0..k {
                        if !sql.is_empty() {
                            sql.push_str(" UNION ALL ");
                        }
                        sql.push('(');
                        sql.push_str(&part.replace("{k}", &(s * k + j).to_string()));
                        sql.push(')');
                    }
                }
                sql
            })
            .collect();
        let singles = parts.iter().map(|p| p.replace("{k}", "0")).collect();
        ShardSlots {
            padding,
            texts,
            singles,
            parts: parts.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The statements that read items of the given shards: per round, the fixed padded
    /// text; a lone item's part alone; or, when padding would cost more than preparing
    /// ([`Padding`]), a one-off text of exactly its items (two more round trips, to
    /// prepare and to close, but no padding parts: MariaDB's cost is per part).
    pub(crate) fn plan(&self, shards: &[usize]) -> Vec<SlotPlan<'_>> {
        Self::rounds(shards)
            .into_iter()
            .map(|round| {
                let real: Vec<usize> = round.layout.iter().flatten().copied().collect();
                match real[..] {
                    [only] => SlotPlan {
                        sql: self.single(shards[only]).into(),
                        prepared: true,
                        items: vec![Some(only)],
                    },
                    _ if self.sparse(&round) => {
                        let mut sql = String::new();
                        for (tag, &i) in real.iter().enumerate() {
                            if tag > 0 {
                                sql.push_str(" UNION ALL ");
                            }
                            sql.push('(');
                            sql.push_str(
                                &self.parts[shards[i] % 8].replace("{k}", &tag.to_string()),
                            );
                            sql.push(')');
                        }
                        SlotPlan {
                            sql: sql.into(),
                            prepared: false,
                            items: real.into_iter().map(Some).collect(),
                        }
                    }
                    _ => SlotPlan {
                        sql: self.text(&round).into(),
                        prepared: true,
                        items: round.layout,
                    },
                }
            })
            .collect()
    }

    /// Whether [`Self::plan`] of these shards needs a one-off text (a round with more
    /// padding than its [`Padding`] allows), without building it.
    pub(crate) fn needs_one_off(&self, shards: &[usize]) -> bool {
        Self::rounds(shards).iter().any(|r| self.sparse(r))
    }

    /// More than one item, and more padding than [`Padding`] allows.
    fn sparse(&self, round: &SlotRound) -> bool {
        let real = round.layout.iter().flatten().count();
        real > 1 && self.padding.one_off_pays(real, round.layout.len() - real)
    }

    /// The part of `shard` alone, tagged 0.
    pub(crate) fn single(&self, shard: usize) -> &str {
        &self.singles[shard % 8]
    }

    /// The text of a round.
    pub(crate) fn text(&self, round: &SlotRound) -> &str {
        let i = SLOT_SIZES.iter().position(|&k| k == round.k).unwrap_or(0);
        &self.texts[i]
    }

    /// Split items (given by their shard, 0..8) into rounds of at most 8 per shard.
    pub(crate) fn rounds(shards: &[usize]) -> Vec<SlotRound> {
        shard_rounds(shards, &SLOT_SIZES)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_rounds_place_every_item_once() {
        let shards = [3, 3, 0, 7, 3, 1, 3, 3, 3, 3, 3, 3, 3];
        let rounds = ShardSlots::rounds(&shards);
        assert_eq!(rounds.len(), 2, "shard 3 holds 10 items: two rounds");
        assert_eq!(rounds[0].k, 8);
        assert_eq!(rounds[1].k, 2);
        let mut seen: Vec<usize> = rounds
            .iter()
            .flat_map(|r| r.layout.iter().flatten().copied())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..shards.len()).collect::<Vec<_>>());
        for r in &rounds {
            for (slot, item) in r.layout.iter().enumerate() {
                if let Some(i) = item {
                    assert_eq!(shards[*i], slot / r.k, "item {i} in its shard's slots");
                }
            }
        }
        assert!(ShardSlots::rounds(&[]).is_empty());
        let t = ShardSlots::new(
            &[
                "A{k}", "B{k}", "C{k}", "D{k}", "E{k}", "F{k}", "G{k}", "H{k}",
            ],
            Padding::Probe,
        );
        let r = &ShardSlots::rounds(&[1, 1])[0];
        assert_eq!(r.k, 2);
        assert!(t
            .text(r)
            .starts_with("(A0) UNION ALL (A1) UNION ALL (B2) UNION ALL (B3)"));
    }

    use super::*;

    #[test]
    fn one_off_texts_are_foreseen_without_building_them() {
        let parts = [
            "A{k}", "B{k}", "C{k}", "D{k}", "E{k}", "F{k}", "G{k}", "H{k}",
        ];
        for padding in [Padding::Probe, Padding::Stop] {
            let t = ShardSlots::new(&parts, padding);
            for shards in [
                &[][..],
                &[5],
                &[0, 1, 2, 3, 4, 5, 6, 7],
                &[3, 3, 0, 1, 2, 4, 5, 6, 7],
                &[2, 2],
                &[3, 3, 3],
                &[1, 1, 6, 6, 6, 6],
                &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7],
            ] {
                let one_off = t.plan(shards).iter().any(|p| !p.prepared);
                assert_eq!(t.needs_one_off(shards), one_off, "{padding:?} {shards:?}");
            }
        }
        let (probe, stop) = (
            ShardSlots::new(&parts, Padding::Probe),
            ShardSlots::new(&parts, Padding::Stop),
        );
        assert!(!probe.needs_one_off(&[0, 1, 2, 3, 4, 5, 6, 7]));
        assert!(probe.needs_one_off(&[3, 3, 3]), "3 of 32 parts");
        // 11 items, 4 slots per shard: 32 parts, 21 of them padding.
        let eleven = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];
        assert!(probe.needs_one_off(&eleven));
        assert!(!stop.needs_one_off(&eleven));
        // Two items: 8 or 16 parts stay padded when padding is cheap, 32 do not.
        assert!(probe.needs_one_off(&[2, 5]) && !stop.needs_one_off(&[2, 5]));
        assert!(probe.needs_one_off(&[2, 2]) && !stop.needs_one_off(&[2, 2]));
        assert!(stop.needs_one_off(&[3, 3, 3]), "29 of 32 parts padding");
    }

    #[test]
    fn shard_lists_bind_every_item_once_in_its_shard() {
        let lists = ShardLists::new(|s| format!("SELECT {s} WHERE x IN ({{in}})"));
        // 3 items in shard 2, 1 in shard 5: one round, 4 markers per shard.
        let plans = lists.plan(&[2, 5, 2, 2]);
        assert_eq!(plans.len(), 1);
        let p = &plans[0];
        assert_eq!(p.sql.matches('?').count(), 32);
        assert!(p
            .sql
            .starts_with("(SELECT 0 WHERE x IN (?, ?, ?, ?)) UNION ALL (SELECT 1"));
        assert_eq!(p.items.len(), 32);
        assert_eq!(&p.items[8..12], &[Some(0), Some(2), Some(3), None]);
        assert_eq!(&p.items[20..24], &[Some(1), None, None, None]);
        assert_eq!(p.items.iter().flatten().count(), 4);
        // 40 items in one shard: a round of 32 and a round of 8.
        let plans = lists.plan(&[7; 40]);
        let sizes: Vec<usize> = plans.iter().map(|p| p.items.len()).collect();
        assert_eq!(sizes, vec![8 * 32, 8 * 8]);
        let mut seen: Vec<usize> = plans
            .iter()
            .flat_map(|p| p.items.iter().flatten().copied())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        assert!(lists.plan(&[]).is_empty());
    }

    #[test]
    fn union_tags_each_copy() {
        assert_eq!(
            tagged_union("SELECT {k} AS k FROM t WHERE a = ?", 2),
            "(SELECT 0 AS k FROM t WHERE a = ?) UNION ALL (SELECT 1 AS k FROM t WHERE a = ?)"
        );
        let texts = BucketTexts::new(|n| format!("IN {n}"));
        assert_eq!(texts.for_len(3), ("IN 4", 4));
        assert_eq!(texts.for_len(1), ("IN 1", 1));
        assert_eq!(texts.for_len(16), ("IN 16", 16));
        assert_eq!(texts.for_len(17), ("IN 32", 32));
        assert_eq!(
            texts.for_len(40),
            ("IN 32", 32),
            "callers chunk at the largest size"
        );
        let wide = BucketTexts::with_sizes(&[1, 48, 96], |n| format!("IN {n}"));
        assert_eq!(wide.for_len(2), ("IN 48", 48));
        assert_eq!(wide.for_len(48), ("IN 48", 48));
        assert_eq!(wide.for_len(80), ("IN 96", 96));
    }

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
        assert!(v
            .iter()
            .all(|r| matches!(r, Err(Error::NotFound(s)) if s == "x")));
        let v = fan_out(2, Ok(vec![1u32, 2]));
        assert_eq!(
            v.into_iter().map(|r| r.ok()).collect::<Vec<_>>(),
            vec![Some(1), Some(2)]
        );
    }
}
