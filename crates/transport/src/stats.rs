//! Counters of the transport, ready to be exported as metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (relaxed atomics). `connections_open`, `requests_in_flight` and
/// `reply_bytes_queued` are gauges, the rest only grow.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted and served.
    pub connections_accepted: AtomicU64,
    /// Connections currently open.
    pub connections_open: AtomicU64,
    /// Sockets closed at once because of the connection limit.
    pub connections_rejected: AtomicU64,
    /// Connections closed for idleness.
    pub idle_closed: AtomicU64,
    /// Frames received (all, including heartbeats and unknown commands).
    pub frames_received: AtomicU64,
    /// Requests dispatched to the handler.
    pub requests: AtomicU64,
    /// Replies written to sockets.
    pub replies: AtomicU64,
    /// Replies produced for connections that were already gone.
    pub replies_dropped: AtomicU64,
    /// Heartbeats received.
    pub heartbeats_received: AtomicU64,
    /// Heartbeats sent.
    pub heartbeats_sent: AtomicU64,
    /// Requests with a command id not in the table.
    pub unknown_commands: AtomicU64,
    /// Connections closed because of a framing error (the three kinds below).
    pub framing_errors: AtomicU64,
    /// Frames whose length field is below the 16-byte header.
    pub frames_too_short: AtomicU64,
    /// Frames whose length field is above the largest accepted frame.
    pub frames_too_long: AtomicU64,
    /// Reads that failed below the framing (connection reset mid-frame and the like).
    pub frames_unreadable: AtomicU64,
    /// Handler tasks that panicked.
    pub handler_panics: AtomicU64,
    /// Errors from accept().
    pub accept_errors: AtomicU64,
    /// Connections closed because the peer did not read its replies within the write timeout.
    pub write_timeouts: AtomicU64,
    /// Requests being handled now.
    pub requests_in_flight: AtomicU64,
    /// Reply bytes produced and not yet taken by the kernel, all connections.
    pub reply_bytes_queued: AtomicU64,
    /// Times a connection stopped reading because its own or the total reply bytes were at
    /// their limit.
    pub reads_paused: AtomicU64,
}

/// A plain copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_open: u64,
    pub connections_rejected: u64,
    pub idle_closed: u64,
    pub frames_received: u64,
    pub requests: u64,
    pub replies: u64,
    pub replies_dropped: u64,
    pub heartbeats_received: u64,
    pub heartbeats_sent: u64,
    pub unknown_commands: u64,
    pub framing_errors: u64,
    pub frames_too_short: u64,
    pub frames_too_long: u64,
    pub frames_unreadable: u64,
    pub handler_panics: u64,
    pub accept_errors: u64,
    pub write_timeouts: u64,
    pub requests_in_flight: u64,
    pub reply_bytes_queued: u64,
    pub reads_paused: u64,
}

impl Stats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: g(&self.connections_accepted),
            connections_open: g(&self.connections_open),
            connections_rejected: g(&self.connections_rejected),
            idle_closed: g(&self.idle_closed),
            frames_received: g(&self.frames_received),
            requests: g(&self.requests),
            replies: g(&self.replies),
            replies_dropped: g(&self.replies_dropped),
            heartbeats_received: g(&self.heartbeats_received),
            heartbeats_sent: g(&self.heartbeats_sent),
            unknown_commands: g(&self.unknown_commands),
            framing_errors: g(&self.framing_errors),
            frames_too_short: g(&self.frames_too_short),
            frames_too_long: g(&self.frames_too_long),
            frames_unreadable: g(&self.frames_unreadable),
            handler_panics: g(&self.handler_panics),
            accept_errors: g(&self.accept_errors),
            write_timeouts: g(&self.write_timeouts),
            requests_in_flight: g(&self.requests_in_flight),
            reply_bytes_queued: g(&self.reply_bytes_queued),
            reads_paused: g(&self.reads_paused),
        }
    }
}
