//! An async client for the db_proxy protocol, used by tests, the benchmark and other services.
//!
//! One background reader task matches responses to requests by `seq_num` (many requests may
//! be in flight at once), skips server heartbeats and counts `0x0702` stop notices; one writer
//! task owns the socket's write half; an optional task sends heartbeats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use crate::codec::{Pdu, PduCodec, DEFAULT_MAX_FRAME_LEN};
use crate::commands::{cid, conventional_sid, lookup};
use crate::Error;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long `call` waits for a response.
    pub request_timeout: Duration,
    /// Send a heartbeat this often; `None` disables client heartbeats. Heartbeats stop once
    /// the server sent a stop-receive notice.
    pub heartbeat_interval: Option<Duration>,
    /// Largest frame accepted from the server.
    pub max_frame_len: usize,
    /// Depth of the outgoing queue (back-pressures callers when full).
    pub send_queue: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            heartbeat_interval: Some(Duration::from_secs(5)),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            send_queue: 1024,
        }
    }
}

enum Outgoing {
    Pdu(Pdu),
    Raw(Bytes),
}

type Pending = Arc<Mutex<Option<HashMap<u16, oneshot::Sender<Pdu>>>>>;

struct Inner {
    tx: mpsc::Sender<Outgoing>,
    pending: Pending,
    next_seq: AtomicU16,
    stop_notices: watch::Receiver<u64>,
    closed: watch::Receiver<bool>,
    options: ClientOptions,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A connection to a db_proxy server. Cheap to clone; all clones share the connection,
/// which closes when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects with default options.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, Error> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// Connects with the given options.
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client::from_stream(stream, options))
    }

    /// Wraps an already connected socket. Must be called inside a tokio runtime.
    pub fn from_stream(stream: TcpStream, options: ClientOptions) -> Client {
        let (read_half, write_half) = stream.into_split();
        let (tx, rx) = mpsc::channel(options.send_queue.max(1));
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (stop_tx, stop_rx) = watch::channel(0u64);
        let (closed_tx, closed_rx) = watch::channel(false);
        let reader = FramedRead::new(read_half, PduCodec::new(options.max_frame_len));
        // The writer is not aborted on drop: it drains queued PDUs and exits once every
        // sender (the client's and the heartbeat task's) is gone.
        tokio::spawn(write_loop(write_half, rx));
        let mut tasks = vec![tokio::spawn(read_loop(
            reader,
            pending.clone(),
            stop_tx,
            closed_tx,
        ))];
        if let Some(every) = options.heartbeat_interval {
            let tx = tx.clone();
            let stops = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tick.tick().await;
                    // Like msg_server: stop heartbeating a server that announced shutdown.
                    if *stops.borrow() > 0 {
                        break;
                    }
                    if tx.send(Outgoing::Pdu(Pdu::heartbeat())).await.is_err() {
                        break;
                    }
                }
            }));
        }
        Client {
            inner: Arc::new(Inner {
                tx,
                pending,
                next_seq: AtomicU16::new(1),
                stop_notices: stop_rx,
                closed: closed_rx,
                options,
                tasks,
            }),
        }
    }

    /// Sends `msg` as command `command_id` and waits for the response with the same seq_num.
    ///
    /// The service id is the command's conventional one (its high byte). Fails with
    /// [`Error::NoResponse`] for commands that never get a reply, [`Error::Timeout`] after
    /// `request_timeout`, [`Error::ConnectionClosed`] if the connection goes away.
    pub async fn call(&self, command_id: u16, msg: &impl prost::Message) -> Result<Pdu, Error> {
        if lookup(command_id).is_some_and(|c| c.response.is_none()) {
            return Err(Error::NoResponse(command_id));
        }
        self.call_raw(
            conventional_sid(command_id),
            command_id,
            Bytes::from(msg.encode_to_vec()),
        )
        .await
    }

    /// Like [`Client::call`], then decodes the response body strictly as `R`, checking the
    /// response command id against the command table.
    pub async fn call_decode<R>(
        &self,
        command_id: u16,
        msg: &impl prost::Message,
    ) -> Result<R, Error>
    where
        R: prost::Message + prost::Name + Default,
    {
        let pdu = self.call(command_id, msg).await?;
        if let Some((_, expected)) = lookup(command_id).and_then(|c| c.response) {
            if pdu.command_id != expected {
                return Err(Error::UnexpectedResponse {
                    expected,
                    got: pdu.command_id,
                });
            }
        }
        crate::decode::decode(&pdu.body)
    }

    /// Sends a request with explicit header ids and body and waits for the PDU answering it
    /// (matched by the seq_num this client assigns). Useful for unknown commands in tests.
    pub async fn call_raw(
        &self,
        service_id: u16,
        command_id: u16,
        body: Bytes,
    ) -> Result<Pdu, Error> {
        let (seq_num, rx) = self.register()?;
        let pdu = Pdu::new(service_id, command_id, seq_num, body);
        if self.inner.tx.send(Outgoing::Pdu(pdu)).await.is_err() {
            self.unregister(seq_num);
            return Err(Error::ConnectionClosed);
        }
        match tokio::time::timeout(self.inner.options.request_timeout, rx).await {
            Ok(Ok(pdu)) => Ok(pdu),
            Ok(Err(_)) => Err(Error::ConnectionClosed),
            Err(_) => {
                self.unregister(seq_num);
                Err(Error::Timeout {
                    command_id,
                    seq_num,
                })
            }
        }
    }

    /// Sends `msg` as command `command_id` without waiting for any reply (seq_num 0).
    pub async fn send(&self, command_id: u16, msg: &impl prost::Message) -> Result<(), Error> {
        let pdu = Pdu::new(
            conventional_sid(command_id),
            command_id,
            0,
            msg.encode_to_vec(),
        );
        self.send_pdu(pdu).await
    }

    /// Sends a ready-made PDU; any reply to it is discarded unless its seq_num matches a call.
    pub async fn send_pdu(&self, pdu: Pdu) -> Result<(), Error> {
        self.inner
            .tx
            .send(Outgoing::Pdu(pdu))
            .await
            .map_err(|_| Error::ConnectionClosed)
    }

    /// Writes raw bytes to the socket as they are (for malformed-input tests).
    pub async fn send_raw(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        self.inner
            .tx
            .send(Outgoing::Raw(bytes.into()))
            .await
            .map_err(|_| Error::ConnectionClosed)
    }

    /// Sends one heartbeat now.
    pub async fn heartbeat(&self) -> Result<(), Error> {
        self.send_pdu(Pdu::heartbeat()).await
    }

    /// A watch of the number of `0x0702` stop-receive notices received so far.
    pub fn stop_notices(&self) -> watch::Receiver<u64> {
        self.inner.stop_notices.clone()
    }

    /// Whether the server closed the connection (or reading from it failed).
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// Completes when the connection is closed by the server (or reading failed).
    pub async fn closed(&self) {
        let mut rx = self.inner.closed.clone();
        // An Err means the reader task is gone, which also means closed.
        let _ = rx.wait_for(|c| *c).await;
    }

    fn register(&self) -> Result<(u16, oneshot::Receiver<Pdu>), Error> {
        let mut guard = self
            .inner
            .pending
            .lock()
            .map_err(|_| Error::ConnectionClosed)?;
        let map = guard.as_mut().ok_or(Error::ConnectionClosed)?;
        let (tx, rx) = oneshot::channel();
        // Skip 0 (used by heartbeats/notices) and seq numbers still in flight.
        for _ in 0..=u16::MAX as u32 {
            let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
            if seq != 0 && !map.contains_key(&seq) {
                map.insert(seq, tx);
                return Ok((seq, rx));
            }
        }
        Err(Error::ConnectionClosed)
    }

    fn unregister(&self, seq: u16) {
        if let Ok(mut guard) = self.inner.pending.lock() {
            if let Some(map) = guard.as_mut() {
                map.remove(&seq);
            }
        }
    }
}

async fn read_loop(
    mut reader: FramedRead<tokio::net::tcp::OwnedReadHalf, PduCodec>,
    pending: Pending,
    stop_tx: watch::Sender<u64>,
    closed_tx: watch::Sender<bool>,
) {
    while let Some(item) = reader.next().await {
        let pdu = match item {
            Ok(pdu) => pdu,
            Err(e) => {
                tracing::warn!(error = %e, "client: bad frame from server, closing");
                break;
            }
        };
        match pdu.command_id {
            cid::OTHER_HEARTBEAT => continue,
            cid::OTHER_STOP_RECV_PACKET => {
                stop_tx.send_modify(|n| *n += 1);
                continue;
            }
            _ => {}
        }
        let waiter = pending
            .lock()
            .ok()
            .and_then(|mut g| g.as_mut().and_then(|m| m.remove(&pdu.seq_num)));
        match waiter {
            Some(tx) => {
                let _ = tx.send(pdu);
            }
            None => tracing::debug!(
                command_id = pdu.command_id,
                seq_num = pdu.seq_num,
                "client: unmatched response dropped"
            ),
        }
    }
    // Fail every waiter and refuse new calls.
    if let Ok(mut g) = pending.lock() {
        g.take();
    }
    let _ = closed_tx.send(true);
}

async fn write_loop(mut w: OwnedWriteHalf, mut rx: mpsc::Receiver<Outgoing>) {
    let mut buf = BytesMut::with_capacity(8192);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Batch whatever is already queued into one write.
        while let Some(item) = next {
            match item {
                Outgoing::Pdu(p) => p.write_to(&mut buf),
                Outgoing::Raw(b) => buf.extend_from_slice(&b),
            }
            next = if buf.len() < 64 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = w.write_all(&buf).await {
            tracing::debug!(error = %e, "client: write failed");
            return;
        }
        buf.clear();
    }
    let _ = w.shutdown().await;
}
