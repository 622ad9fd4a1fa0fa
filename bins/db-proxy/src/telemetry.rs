//! The operator's view over HTTP (`[metrics] listen`): Prometheus metrics on `/metrics`,
//! liveness on `/healthz`, readiness on `/readyz`.
//!
//! The library crates record through the `metrics` facade (their lists:
//! `dbproxy_model::metrics`, `dbproxy_action::metrics`); the transport's counters live in
//! its `Stats` and are copied into the metrics below at each scrape, as are the MySQL pool
//! gauges.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use dbproxy_model::Store;
use dbproxy_transport::Stats;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

dbproxy_model::declare_metrics! {
    /// Peer connections open now.
    gauge CONNECTIONS_OPEN = "dbproxy_connections_open";
    /// Peer connections accepted and served.
    counter CONNECTIONS_ACCEPTED = "dbproxy_connections_accepted_total";
    /// Peer connections closed at once because the connection limit was reached.
    counter CONNECTIONS_REFUSED = "dbproxy_connections_refused_total";
    /// Peer connections closed by db-proxy, by reason (idle: nothing received for the idle
    /// timeout; write_timeout: the peer did not take its replies).
    counter CONNECTIONS_CLOSED = "dbproxy_connections_closed_total";
    /// Frames received (heartbeats and unknown commands included).
    counter FRAMES_RECEIVED = "dbproxy_frames_received_total";
    /// Frames that closed their connection or were dropped, by reason (too_short,
    /// too_long, unreadable, unknown_command).
    counter FRAMES_REJECTED = "dbproxy_frames_rejected_total";
    /// Requests being handled now.
    gauge REQUESTS_IN_FLIGHT = "dbproxy_requests_in_flight";
    /// Replies written to peers.
    counter REPLIES = "dbproxy_replies_total";
    /// Replies produced for connections that were already gone.
    counter REPLIES_DROPPED = "dbproxy_replies_dropped_total";
    /// Reply bytes produced and not yet taken by the kernel, all connections.
    gauge REPLY_BYTES_QUEUED = "dbproxy_reply_bytes_queued";
    /// Times a connection stopped reading because its replies were not drained.
    counter READS_PAUSED = "dbproxy_reads_paused_total";
    /// Heartbeats, by direction (received, sent).
    counter HEARTBEATS = "dbproxy_heartbeats_total";
    /// Request handlers that panicked (the connection keeps serving).
    counter HANDLER_PANICS = "dbproxy_handler_panics_total";
    /// Errors of accept() on the listening sockets.
    counter ACCEPT_ERRORS = "dbproxy_accept_errors_total";
    /// 1 while db-proxy is ready (every backend answers and no shutdown has started).
    gauge READY = "dbproxy_ready";
}

/// How often the recorder's histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// How long `/readyz` waits for each backend.
pub const READY_TIMEOUT: Duration = Duration::from_millis(500);

/// Failure to start the recorder or the listener.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Prometheus recorder could not be built or installed.
    #[error("metrics recorder: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
    /// The HTTP listener could not bind.
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Installs the process-wide Prometheus recorder (latency histograms with fixed buckets)
/// and hands it every metric's help text. Call before the store connects, so the metrics
/// set at start-up are recorded too.
pub fn install() -> Result<PrometheusHandle, Error> {
    const SECONDS: &[f64] = &[
        0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0,
    ];
    const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(
            Matcher::Full(dbproxy_model::metrics::STAGE_BATCH_SIZE.into()),
            BATCH,
        )?
        .install_recorder()?;
    describe();
    dbproxy_model::metrics::describe();
    dbproxy_action::metrics::describe();
    Ok(handle)
}

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct Http {
    /// The recorder's output.
    pub handle: PrometheusHandle,
    /// The transport's counters.
    pub stats: Arc<Stats>,
    /// The backends, for readiness and pool gauges.
    pub store: Store,
    /// Set when shutdown starts: not ready from then on.
    pub draining: Arc<AtomicBool>,
}

/// Binds the listener now (so a bad address fails start-up).
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr: addr.to_owned(),
        source,
    })
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, http: Http, stop: CancellationToken) {
    let handle = http.handle.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(http);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics and health endpoints listening");
    }
    // The recorder keeps histogram samples until upkeep folds them into their buckets:
    // without it they pile up between scrapes (memory, and CPU when rendering).
    let upkeep = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => handle.run_upkeep(),
                }
            }
        })
    };
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(%error, "metrics listener failed");
    }
    upkeep.abort();
}

async fn metrics(State(http): State<Http>) -> String {
    export_transport(&http.stats);
    http.store.record_pool_gauges();
    // The readiness gauge is what /readyz would answer now.
    let _ = readiness(&http).await;
    http.handle.render()
}

/// 200 `ready` when every backend answered within [`READY_TIMEOUT`] and no shutdown has
/// started; 503 with one line per failing part otherwise.
async fn readyz(State(http): State<Http>) -> (StatusCode, String) {
    match readiness(&http).await {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Whether db-proxy is ready (sets [`READY`]); the reasons, one line each, when not.
async fn readiness(http: &Http) -> Result<(), String> {
    let verdict = if http.draining.load(Ordering::SeqCst) {
        Err("shutting down\n".to_owned())
    } else {
        let failing: Vec<String> = http
            .store
            .readiness(READY_TIMEOUT)
            .await
            .into_iter()
            .filter_map(|(part, why)| why.map(|why| format!("{part}: {why}\n")))
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(failing.concat())
        }
    };
    metrics::gauge!(READY).set(if verdict.is_ok() { 1.0 } else { 0.0 });
    verdict
}

/// Copies the transport's counters into their metrics.
fn export_transport(stats: &Stats) {
    let s = stats.snapshot();
    metrics::gauge!(CONNECTIONS_OPEN).set(s.connections_open as f64);
    metrics::counter!(CONNECTIONS_ACCEPTED).absolute(s.connections_accepted);
    metrics::counter!(CONNECTIONS_REFUSED).absolute(s.connections_rejected);
    metrics::counter!(CONNECTIONS_CLOSED, "reason" => "idle").absolute(s.idle_closed);
    metrics::counter!(CONNECTIONS_CLOSED, "reason" => "write_timeout").absolute(s.write_timeouts);
    metrics::counter!(FRAMES_RECEIVED).absolute(s.frames_received);
    for (reason, n) in [
        ("too_short", s.frames_too_short),
        ("too_long", s.frames_too_long),
        ("unreadable", s.frames_unreadable),
        ("unknown_command", s.unknown_commands),
    ] {
        metrics::counter!(FRAMES_REJECTED, "reason" => reason).absolute(n);
    }
    metrics::gauge!(REQUESTS_IN_FLIGHT).set(s.requests_in_flight as f64);
    metrics::counter!(REPLIES).absolute(s.replies);
    metrics::counter!(REPLIES_DROPPED).absolute(s.replies_dropped);
    metrics::gauge!(REPLY_BYTES_QUEUED).set(s.reply_bytes_queued as f64);
    metrics::counter!(READS_PAUSED).absolute(s.reads_paused);
    metrics::counter!(HEARTBEATS, "direction" => "received").absolute(s.heartbeats_received);
    metrics::counter!(HEARTBEATS, "direction" => "sent").absolute(s.heartbeats_sent);
    metrics::counter!(HANDLER_PANICS).absolute(s.handler_panics);
    metrics::counter!(ACCEPT_ERRORS).absolute(s.accept_errors);
}
