//! Reply bytes a connection may hold: replies its handlers produced that the kernel has not
//! taken yet. Reading pauses at the limit, so a peer that stops reading costs about the
//! limit, not one reply per request it managed to send.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::Stats;

/// One connection's account; the total of all connections is `Stats::reply_bytes_queued`.
pub(crate) struct ReplyBudget {
    queued: AtomicUsize,
    /// The connection's recent largest reply: what each request in flight is expected to
    /// add. Until replies are seen it is an eighth of the limit (eight requests at once); it
    /// decays by an eighth per smaller reply, so a large reply does not throttle for long.
    expected: AtomicUsize,
    per_connection: usize,
    total: usize,
    drained: Notify,
    stats: Arc<Stats>,
}

impl ReplyBudget {
    pub(crate) fn new(per_connection: usize, total: usize, stats: Arc<Stats>) -> Self {
        ReplyBudget {
            queued: AtomicUsize::new(0),
            expected: AtomicUsize::new(per_connection.max(8) / 8),
            per_connection: per_connection.max(1),
            total: total.max(1),
            drained: Notify::new(),
            stats,
        }
    }

    /// Whether another request may be read with `in_flight` requests being handled: the
    /// queued bytes plus what those requests are expected to add stay below the connection's
    /// limit, and the total of all connections is below its own.
    pub(crate) fn admits(&self, in_flight: usize) -> bool {
        let queued = self.queued.load(Ordering::Relaxed);
        let coming = in_flight.saturating_mul(self.expected.load(Ordering::Relaxed));
        queued.saturating_add(coming) < self.per_connection && !self.total_reached()
    }

    /// Whether all connections together hold the total limit.
    pub(crate) fn total_reached(&self) -> bool {
        self.stats.reply_bytes_queued.load(Ordering::Relaxed) >= self.total as u64
    }

    /// A reply of `n` bytes was produced and is on its way to the writer.
    pub(crate) fn produced(&self, n: usize) {
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.stats
            .reply_bytes_queued
            .fetch_add(n as u64, Ordering::Relaxed);
        let seen = self.expected.load(Ordering::Relaxed);
        let next = n.max(seen - seen / 8);
        self.expected.store(next, Ordering::Relaxed);
    }

    /// The kernel took `n` bytes of replies (or they were discarded).
    pub(crate) fn taken(&self, n: usize) {
        let before = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            })
            .unwrap_or(0);
        sub(&self.stats.reply_bytes_queued, before.min(n));
        self.drained.notify_one();
    }

    /// Waits until the writer took some bytes (a stored wake-up counts, so none is lost).
    pub(crate) async fn drained(&self) {
        self.drained.notified().await;
    }

    /// At the end of the connection: whatever is still counted leaves the total.
    pub(crate) fn release_all(&self) {
        let left = self.queued.swap(0, Ordering::Relaxed);
        sub(&self.stats.reply_bytes_queued, left);
    }
}

fn sub(gauge: &AtomicU64, n: usize) {
    let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n as u64))
    });
}
