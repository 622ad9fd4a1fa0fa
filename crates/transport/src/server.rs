//! Listeners, accept loops, connection limit and shutdown orchestration.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::connection::{serve_connection, ConnCtx};
use crate::{Error, Handler, ServerConfig, Stats};

const LISTEN_BACKLOG: u32 = 1024;
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A bound server, ready to [`run`](Server::run).
pub struct Server<H: Handler> {
    listeners: Vec<TcpListener>,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    stats: Arc<Stats>,
}

impl<H: Handler> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Binds every address of `config.listen` (SO_REUSEADDR on each listener).
    pub async fn bind(config: ServerConfig, handler: Arc<H>) -> Result<Server<H>, Error> {
        if config.listen.is_empty() {
            return Err(Error::NoListenAddress);
        }
        let mut listeners = Vec::with_capacity(config.listen.len());
        for &addr in &config.listen {
            let bind = || -> std::io::Result<TcpListener> {
                let socket = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                socket.listen(LISTEN_BACKLOG)
            };
            let listener = bind().map_err(|source| Error::Bind { addr, source })?;
            listeners.push(listener);
        }
        Ok(Server {
            listeners,
            config: Arc::new(config),
            handler,
            stats: Arc::new(Stats::default()),
        })
    }

    /// The actually bound addresses (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Shared counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Serves until `shutdown` completes, then: stops accepting, sends the stop-receive notice
    /// on every connection, serves arriving requests for up to `shutdown_grace` (less for quiet
    /// connections), lets in-flight handlers finish and flushes their replies, and returns.
    /// Returns no later than `shutdown_grace + shutdown_flush` (plus scheduling slack).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let accept_stop = CancellationToken::new();
        let lame_duck = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ctx = Arc::new(ConnCtx {
            config: self.config.clone(),
            handler: self.handler.clone(),
            stats: self.stats.clone(),
            lame_duck: lame_duck.clone(),
            hard_stop: hard_stop.clone(),
        });
        let limit = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        let next_id = Arc::new(AtomicU32::new(1));
        let mut accepts = JoinSet::new();
        for listener in self.listeners {
            let addr = listener.local_addr().ok();
            tracing::info!(?addr, "listening");
            accepts.spawn(accept_loop(
                listener,
                ctx.clone(),
                limit.clone(),
                next_id.clone(),
                tracker.clone(),
                accept_stop.clone(),
            ));
        }

        shutdown.await;
        let open = self.stats.snapshot().connections_open;
        tracing::info!(
            open_connections = open,
            "shutdown: stop accepting, notifying peers"
        );
        accept_stop.cancel();
        while accepts.join_next().await.is_some() {}
        lame_duck.cancel();
        tracker.close();
        let limit = self.config.shutdown_grace + self.config.shutdown_flush;
        if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
            tracing::warn!("shutdown: connections still busy after grace; dropping them");
            hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_millis(200), tracker.wait()).await;
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    ctx: Arc<ConnCtx<H>>,
    limit: Arc<Semaphore>,
    next_id: Arc<AtomicU32>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let (socket, peer) = match accepted {
            Ok(x) => {
                backoff = ACCEPT_BACKOFF_MIN;
                x
            }
            Err(e) => {
                Stats::inc(&ctx.stats.accept_errors);
                tracing::warn!(error = %e, ?backoff, "accept failed; backing off");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            Stats::inc(&ctx.stats.connections_rejected);
            tracing::warn!(
                %peer,
                max = ctx.config.max_connections,
                "connection limit reached; closing new connection"
            );
            drop(socket);
            continue;
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "set TCP_NODELAY failed");
        }
        let mut id = next_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = next_id.fetch_add(1, Ordering::Relaxed);
        }
        Stats::inc(&ctx.stats.connections_accepted);
        Stats::inc(&ctx.stats.connections_open);
        let ctx = ctx.clone();
        let span = tracing::info_span!("conn", id, %peer);
        tracker.spawn(
            async move {
                tracing::info!("connection opened");
                serve_connection(socket, peer, ctx.clone()).await;
                ctx.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            }
            .instrument(span),
        );
    }
}
