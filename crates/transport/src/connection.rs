//! One connection: a reader loop dispatching to spawned handler tasks, and a writer task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use dbproxy_protocol::{cid, lookup, Pdu, PduCodec};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::budget::ReplyBudget;
use crate::{Handler, Request, ServerConfig, Stats};

/// Everything a connection needs from the server.
pub(crate) struct ConnCtx<H> {
    pub config: Arc<ServerConfig>,
    pub handler: Arc<H>,
    pub stats: Arc<Stats>,
    /// Cancelled when shutdown starts.
    pub lame_duck: CancellationToken,
    /// Cancelled when the flush allowance is over: drop everything.
    pub hard_stop: CancellationToken,
}

const FAR: Duration = Duration::from_secs(86400 * 365);
/// How often a connection paused by the total reply limit looks again (the total drains
/// on other connections, which do not wake this one).
const TOTAL_RECHECK: Duration = Duration::from_millis(10);
/// Largest write buffer a connection keeps between writes.
const KEEP_WRITE_BUFFER: usize = 64 * 1024;

pub(crate) async fn serve_connection<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ConnCtx<H>>,
) {
    let cfg = &ctx.config;
    let stats = &ctx.stats;
    let (read_half, write_half) = stream.into_split();
    let mut reader = FramedRead::new(read_half, PduCodec::new(cfg.max_frame_len));
    let max_in_flight = cfg.max_in_flight_per_connection.max(1);
    let (tx, rx) = mpsc::channel::<Pdu>(max_in_flight + 4);
    let budget = Arc::new(ReplyBudget::new(
        cfg.max_reply_bytes_per_connection,
        cfg.max_reply_bytes_total,
        stats.clone(),
    ));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writer = tokio::spawn(write_loop(
        write_half,
        rx,
        cfg.heartbeat_interval,
        cfg.write_timeout,
        budget.clone(),
        sent.clone(),
        stats.clone(),
    ));
    let (mut requests, mut received) = (0u64, 0u64);
    let mut writer_done = false;
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut last_recv = Instant::now();
    // Set once shutdown starts: (when the notice was sent, grace deadline).
    let mut lame: Option<(Instant, Instant)> = None;
    // Reading paused because of reply bytes (counted once per pause).
    let mut paused = false;

    loop {
        let bytes_allow = budget.admits(in_flight.len());
        let can_read = in_flight.len() < max_in_flight && bytes_allow;
        if !bytes_allow && !paused {
            Stats::inc(&stats.reads_paused);
            tracing::debug!("replies not drained; reading paused");
        }
        if bytes_allow && paused {
            // The idle timeout counts from the end of the pause.
            last_recv = Instant::now();
        }
        paused = !bytes_allow;
        let idle_at = last_recv + cfg.idle_timeout;
        let (quiet_at, deadline) = match lame {
            Some((since, deadline)) => (last_recv.max(since) + cfg.shutdown_quiet, deadline),
            None => (Instant::now() + FAR, Instant::now() + FAR),
        };
        tokio::select! {
            biased;
            _ = ctx.hard_stop.cancelled() => break,
            _ = &mut writer, if !writer_done => {
                // The peer is gone or stopped reading: nothing more can be answered.
                writer_done = true;
                break;
            }
            _ = ctx.lame_duck.cancelled(), if lame.is_none() => {
                let now = Instant::now();
                lame = Some((now, now + cfg.shutdown_grace));
                tracing::debug!("sending stop-receive notice");
                if tx.send(Pdu::stop_receive()).await.is_err() {
                    break;
                }
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => note_task_end(done, stats),
            _ = budget.drained(), if paused => {}
            _ = tokio::time::sleep(TOTAL_RECHECK), if paused && budget.total_reached() => {}
            frame = reader.next(), if can_read => match frame {
                None => {
                    tracing::debug!("peer closed the connection");
                    break;
                }
                Some(Err(e)) => {
                    Stats::inc(&stats.framing_errors);
                    Stats::inc(match e {
                        dbproxy_protocol::Error::FrameTooShort { .. } => &stats.frames_too_short,
                        dbproxy_protocol::Error::FrameTooLong { .. } => &stats.frames_too_long,
                        _ => &stats.frames_unreadable,
                    });
                    tracing::warn!(error = %e, "framing error; closing connection");
                    break;
                }
                Some(Ok(pdu)) => {
                    last_recv = Instant::now();
                    received += pdu.encoded_len() as u64;
                    requests += u64::from(pdu.command_id != cid::OTHER_HEARTBEAT);
                    dispatch(pdu, peer, &ctx, &tx, &budget, &mut in_flight);
                }
            },
            // A peer whose reading db-proxy paused is not idle: its frames wait unread.
            _ = sleep_until(idle_at), if lame.is_none() && !paused => {
                Stats::inc(&stats.idle_closed);
                tracing::info!(idle = ?cfg.idle_timeout, "nothing received; closing idle connection");
                break;
            }
            _ = sleep_until(deadline), if lame.is_some() => break,
            _ = sleep_until(quiet_at), if lame.is_some() && in_flight.is_empty() => break,
        }
    }

    // Stop reading; let handlers finish and their replies be written.
    drop(reader);
    loop {
        tokio::select! {
            biased;
            _ = ctx.hard_stop.cancelled() => {
                in_flight.abort_all();
                break;
            }
            done = in_flight.join_next() => match done {
                Some(done) => note_task_end(done, stats),
                None => break,
            },
        }
    }
    drop(tx);
    if !writer_done {
        tokio::select! {
            biased;
            _ = &mut writer => {}
            _ = ctx.hard_stop.cancelled() => writer.abort(),
        }
    }
    // Replies never written (the peer went away) leave the total.
    budget.release_all();
    tracing::info!(
        requests,
        bytes_received = received,
        bytes_sent = sent.load(std::sync::atomic::Ordering::Relaxed),
        "connection closed"
    );
}

fn note_task_end(done: Result<(), tokio::task::JoinError>, stats: &Stats) {
    if let Err(e) = done {
        if e.is_panic() {
            Stats::inc(&stats.handler_panics);
            tracing::error!("request handler panicked");
        }
    }
}

fn dispatch<H: Handler>(
    pdu: Pdu,
    peer: SocketAddr,
    ctx: &Arc<ConnCtx<H>>,
    tx: &mpsc::Sender<Pdu>,
    budget: &Arc<ReplyBudget>,
    in_flight: &mut JoinSet<()>,
) {
    let stats = &ctx.stats;
    Stats::inc(&stats.frames_received);
    if pdu.command_id == cid::OTHER_HEARTBEAT {
        Stats::inc(&stats.heartbeats_received);
        return;
    }
    let Some(command) = lookup(pdu.command_id) else {
        Stats::inc(&stats.unknown_commands);
        tracing::warn!(
            command_id = format_args!("{:#06x}", pdu.command_id),
            service_id = pdu.service_id,
            seq_num = pdu.seq_num,
            "no handler for command; dropped"
        );
        return;
    };
    Stats::inc(&stats.requests);
    let response = command.response;
    let name = command.name;
    let handler = ctx.handler.clone();
    let stats = ctx.stats.clone();
    let tx = tx.clone();
    let budget = budget.clone();
    let seq_num = pdu.seq_num;
    let request = Request {
        command_id: pdu.command_id,
        seq_num,
        body: pdu.body,
        peer,
    };
    let gauge = InFlight::enter(stats.clone());
    // Every line a request's handling logs carries its command and seq.
    let span = tracing::info_span!("req", command = name, seq = seq_num);
    in_flight.spawn(tracing::Instrument::instrument(
        async move {
            let _gauge = gauge;
            let reply = handler.handle(request).await;
            match (reply, response) {
                (Some(body), Some((sid, rcid))) => {
                    let pdu = Pdu::new(sid, rcid, seq_num, body);
                    let n = pdu.encoded_len();
                    budget.produced(n);
                    if tx.send(pdu).await.is_err() {
                        budget.taken(n);
                        Stats::inc(&stats.replies_dropped);
                        tracing::debug!(command = name, "connection gone; reply dropped");
                    }
                }
                (Some(_), None) => {
                    tracing::debug!(command = name, "command has no response; reply discarded");
                }
                (None, _) => {}
            }
        },
        span,
    ));
}

/// One request counted in `Stats::requests_in_flight` until its task ends (or is aborted).
struct InFlight(Arc<Stats>);

impl InFlight {
    fn enter(stats: Arc<Stats>) -> Self {
        Stats::inc(&stats.requests_in_flight);
        InFlight(stats)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .requests_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Writes queued PDUs (batched), and a heartbeat whenever nothing was sent for `heartbeat`.
/// Ends when every sender is gone (after writing everything queued) or on a write error.
async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Pdu>,
    heartbeat: Duration,
    write_timeout: Duration,
    budget: Arc<ReplyBudget>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    stats: Arc<Stats>,
) {
    let mut buf = BytesMut::with_capacity(8192);
    let mut last_send = Instant::now();
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(p) => p,
                None => break,
            },
            _ = sleep_until(last_send + heartbeat) => {
                Stats::inc(&stats.heartbeats_sent);
                Pdu::heartbeat()
            }
        };
        let mut next = Some(first);
        let mut replies = 0u64;
        // Bytes of replies in `buf` (heartbeats and the stop notice are not counted).
        let mut reply_bytes = 0usize;
        while let Some(pdu) = next {
            if pdu.command_id != cid::OTHER_HEARTBEAT
                && pdu.command_id != cid::OTHER_STOP_RECV_PACKET
            {
                replies += 1;
                reply_bytes += pdu.encoded_len();
            }
            if u32::try_from(pdu.encoded_len()).is_err() {
                tracing::error!(
                    len = pdu.encoded_len(),
                    "reply too large for a PDU; dropped"
                );
            } else {
                pdu.write_to(&mut buf);
            }
            next = if buf.len() < 256 * 1024 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        match tokio::time::timeout(write_timeout, w.write_all(&buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed; closing");
                return;
            }
            Err(_) => {
                Stats::inc(&stats.write_timeouts);
                tracing::warn!(?write_timeout, "peer does not read its replies; closing");
                return;
            }
        }
        stats
            .replies
            .fetch_add(replies, std::sync::atomic::Ordering::Relaxed);
        budget.taken(reply_bytes);
        sent.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        buf.clear();
        if buf.capacity() > KEEP_WRITE_BUFFER {
            // A burst of large replies: give the memory back rather than keep it per peer.
            buf = BytesMut::with_capacity(8192);
        }
        last_send = Instant::now();
    }
    let _ = w.shutdown().await;
}
