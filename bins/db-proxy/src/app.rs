//! Wiring: backends → schema → actions → sync task → transport; signals; graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dbproxy_action::Actions;
use dbproxy_model::Store;
use dbproxy_transport::Server;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::settings::{Loaded, Settings};

/// Start-up / run-time failure of the process. Display is one line saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A backend's TCP port did not accept a connection.
    #[error("cannot reach {what} at {addr} ({cause}): {hint}")]
    Unreachable {
        /// "MariaDB" / "Redis".
        what: &'static str,
        /// host:port.
        addr: String,
        /// The connect error.
        cause: String,
        /// What to start.
        hint: String,
    },
    /// Anything else during start-up, with context.
    #[error("{0}")]
    Startup(String),
    /// Signal handler installation failed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "0.0.0.0")
}

/// How to start MariaDB, for the unreachable message.
pub fn mariadb_hint(host: &str) -> String {
    if is_local(host) {
        "start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` \
         (or `systemctl start mariadb`), then run `cargo xtask db-setup`"
            .into()
    } else {
        format!("start MariaDB on {host} or fix mysql.*.host in the config")
    }
}

/// How to start Redis, for the unreachable message.
pub fn redis_hint(host: &str, port: u16) -> String {
    if is_local(host) {
        format!(
            "start it with `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port {port} \
             --save \"\" --appendonly no`"
        )
    } else {
        format!("start Redis on {host} or fix redis.*.host in the config")
    }
}

/// Checks that every configured MySQL and Redis address accepts TCP connections.
pub async fn check_reachable(s: &Settings) -> Result<(), Error> {
    let timeout = s.limits.connect_timeout;
    let mut targets: Vec<(&'static str, String, String)> = Vec::new();
    for m in [&s.mysql.master, &s.mysql.slave] {
        if !m.socket.is_empty() {
            continue;
        }
        targets.push(("MariaDB", m.addr(), mariadb_hint(&m.host)));
    }
    for (_, r) in s.redis.required() {
        targets.push(("Redis", r.addr(), redis_hint(&r.host, r.port)));
    }
    targets.dedup_by(|a, b| a.1 == b.1);
    for (what, addr, hint) in targets {
        let cause = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", timeout.as_millis()),
        };
        return Err(Error::Unreachable {
            what,
            addr,
            cause,
            hint,
        });
    }
    Ok(())
}

struct PidFile(Option<std::path::PathBuf>);

impl PidFile {
    fn write(path: &str) -> Result<Self, Error> {
        if path.is_empty() {
            return Ok(Self(None));
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| Error::Startup(format!("cannot write pid file {path}: {e}")))?;
        Ok(Self(Some(path.into())))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Implements the transport's [`Handler`](dbproxy_transport::Handler) with the action layer.
#[derive(Clone)]
pub struct ActionHandler(pub Actions);

impl dbproxy_transport::Handler for ActionHandler {
    fn handle(
        &self,
        request: dbproxy_transport::Request,
    ) -> impl std::future::Future<Output = Option<Bytes>> + Send {
        let actions = self.0.clone();
        async move { actions.handle(request.command_id, request.body).await }
    }
}

/// Runs the server until SIGTERM/SIGINT and the graceful shutdown are done.
pub async fn run(loaded: Loaded) -> Result<(), Error> {
    let s = &loaded.settings;
    tracing::info!(
        config = %loaded.path.as_ref().map_or_else(|| "built-in defaults".to_owned(), |p| p.display().to_string()),
        format = %loaded.kind,
        threads = s.server.threads,
        "db-proxy {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let startup = |e: &dyn std::fmt::Display| Error::Startup(e.to_string());
    let store_cfg = s.store_config();
    let action_cfg = s.action_settings();
    let server_cfg = s.server_config();

    // Before the store connects: what it records at start-up is kept.
    let recorder = if s.metrics.listen.is_empty() {
        None
    } else {
        Some(crate::telemetry::install().map_err(|e| startup(&e))?)
    };
    let http_listener = match recorder {
        Some(_) => Some(
            crate::telemetry::bind(&s.metrics.listen)
                .await
                .map_err(|e| startup(&e))?,
        ),
        None => None,
    };

    check_reachable(s).await?;
    let store = Store::connect(&store_cfg).await.map_err(|e| {
        Error::Startup(format!(
            "cannot connect the backends ({e}): check mysql.*/redis.* in the config; \
             `cargo xtask db-setup` creates the database and user"
        ))
    })?;
    dbproxy_model::schema::migrate(&store)
        .await
        .map_err(|e| Error::Startup(format!("schema migration failed: {e}")))?;
    let actions = Actions::new(store.clone(), action_cfg);
    let server = Server::bind(server_cfg, Arc::new(ActionHandler(actions.clone())))
        .await
        .map_err(|e| startup(&e))?;
    let _pid = PidFile::write(&s.server.pid_file)?;
    tracing::info!(addrs = ?server.local_addrs(), "db-proxy ready");

    // Metrics and health beside the server; /readyz says 503 from the signal on, and the
    // listener stays up through the drain.
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_http = CancellationToken::new();
    let http = match (recorder, http_listener) {
        (Some(handle), Some(listener)) => Some(tokio::spawn(crate::telemetry::serve(
            listener,
            crate::telemetry::Http {
                handle,
                stats: server.stats(),
                store: store.clone(),
                draining: draining.clone(),
            },
            stop_http.clone(),
        ))),
        _ => None,
    };

    // The group-session sync task (CSyncCenter) runs beside the server; like the original
    // it is told to stop when the signal arrives and finishes its current pass.
    let stop_sync = CancellationToken::new();
    let sync = tokio::spawn({
        let (actions, stop) = (actions.clone(), stop_sync.clone());
        async move { actions.run_group_sync(stop).await }
    });
    let signals = signal_stream()?;
    let served = server
        .run(async move {
            let sig = signals.await;
            tracing::info!("{sig} received: sending stop notice, draining");
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            stop_sync.cancel();
        })
        .await;
    if tokio::time::timeout(Duration::from_secs(10), sync)
        .await
        .is_err()
    {
        tracing::warn!("group sync did not finish its pass in time");
    }
    stop_http.cancel();
    if let Some(http) = http {
        let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    }
    served.map_err(|e| startup(&e))?;
    log_stage_timings(&store);
    tracing::info!("db-proxy stopped");
    Ok(())
}

/// One info line per stage of the model's coalesced paths since the start (queue waits,
/// batches and their backend steps; see `dbproxy_model::StageTiming`): where the time of
/// this run went, for the operator reading the log after a stop.
fn log_stage_timings(store: &Store) {
    for t in store.timings().iter().filter(|t| t.runs > 0) {
        tracing::info!(
            stage = %t.name,
            runs = t.runs,
            requests_per_run = format_args!("{:.1}", t.items as f64 / t.runs as f64),
            mean_ms = format_args!("{:.3}", t.mean().as_secs_f64() * 1e3),
            "stage timing since start"
        );
    }
}

/// Installs SIGTERM/SIGINT handlers now (so an early signal is not lost) and returns a future
/// that completes on the first of them.
fn signal_stream() -> Result<impl std::future::Future<Output = &'static str>, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
