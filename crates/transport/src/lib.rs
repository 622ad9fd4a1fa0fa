//! TCP transport of db-proxy: listeners, framing, heartbeats, idle timeout, bounded
//! concurrency per connection, dispatch to a [`Handler`], and graceful shutdown with the
//! `0x0702` stop-receive notice (docs/compatibility.md#transport-and-connections, docs/compatibility.md#heartbeat-and-idle-timeout, docs/compatibility.md#request-processing-and-strict-decoding, docs/compatibility.md#graceful-shutdown).
//!
//! Connection limit policy: when `max_connections` connections are open, a newly accepted
//! socket is closed immediately (with a warning log) rather than held in a queue.

mod budget;
mod connection;
mod server;
mod stats;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub use server::Server;
pub use stats::{Stats, StatsSnapshot};

/// One request handed to the [`Handler`].
#[derive(Debug, Clone)]
pub struct Request {
    /// Command id of the request (the sole dispatch key).
    pub command_id: u16,
    /// Peer's seq_num (echoed by the transport in the reply header).
    pub seq_num: u16,
    /// Serialized protobuf body, not yet parsed.
    pub body: Bytes,
    /// Remote address of the connection.
    pub peer: SocketAddr,
}

/// The application behind the transport (the bin implements it with the action layer).
///
/// Called only for command ids in the command table (docs/compatibility.md#command-table). Return `Some(body)` to
/// reply; the transport builds the header (response sid/cid from the table, echoed seq_num).
/// `None` means no reply. Commands without a response in the table never get one.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: Request) -> impl std::future::Future<Output = Option<Bytes>> + Send;
}

/// Listener and connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Addresses to listen on (one socket each).
    pub listen: Vec<SocketAddr>,
    /// Largest accepted frame (total length incl. header); larger closes the connection.
    pub max_frame_len: usize,
    /// Connections open at once; further sockets are accepted and closed at once.
    pub max_connections: usize,
    /// Requests handled concurrently per connection; when reached, reading pauses.
    pub max_in_flight_per_connection: usize,
    /// Reply bytes one connection may have queued (produced, not yet taken by the kernel),
    /// counting each request in flight at the size of the connection's recent largest reply.
    /// When reached, reading from that peer pauses until its replies drain, so a peer that
    /// does not read holds about this much, not a reply per request it sent.
    pub max_reply_bytes_per_connection: usize,
    /// Reply bytes all connections together may have queued; when reached, every connection
    /// pauses reading until the total drops below it.
    pub max_reply_bytes_total: usize,
    /// Send a heartbeat when nothing was sent for this long.
    pub heartbeat_interval: Duration,
    /// Close a connection when no frame was received for this long.
    pub idle_timeout: Duration,
    /// After shutdown starts, keep serving arriving requests for at most this long.
    pub shutdown_grace: Duration,
    /// During shutdown, a connection with nothing in flight that received nothing for this
    /// long stops early.
    pub shutdown_quiet: Duration,
    /// Extra time after `shutdown_grace` for in-flight handlers to finish and replies to be
    /// flushed; after it, remaining connections are dropped.
    pub shutdown_flush: Duration,
    /// A reply write that cannot complete for this long (the peer stopped reading) closes
    /// the connection instead of holding its handlers and memory forever.
    pub write_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 10600))],
            max_frame_len: dbproxy_protocol::DEFAULT_MAX_FRAME_LEN,
            max_connections: 1024,
            max_in_flight_per_connection: 64,
            max_reply_bytes_per_connection: 1 << 20,
            max_reply_bytes_total: 64 << 20,
            heartbeat_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(4),
            shutdown_quiet: Duration::from_millis(250),
            shutdown_flush: Duration::from_millis(500),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// The single error type of the transport crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No listen address configured.
    #[error("no listen address configured")]
    NoListenAddress,
    /// Creating/binding/listening on an address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Other I/O error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
