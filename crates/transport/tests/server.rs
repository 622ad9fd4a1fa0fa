//! The transport against real sockets on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use dbproxy_protocol::{cid, sid, Client, ClientOptions, Pdu, PduCodec};
use dbproxy_transport::{Handler, Request, Server, ServerConfig, Stats};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// Echoes the body. A body `sleep:<ms>` sleeps first; `big:<n>` answers n bytes. Tracks
/// peak concurrency and counts calls.
#[derive(Default)]
struct Echo {
    current: AtomicUsize,
    peak: AtomicUsize,
    calls: AtomicUsize,
}

impl Handler for Echo {
    async fn handle(&self, request: Request) -> Option<Bytes> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(n) = std::str::from_utf8(&request.body)
            .ok()
            .and_then(|s| s.strip_prefix("big:"))
            .and_then(|s| s.parse::<usize>().ok())
        {
            return Some(Bytes::from(vec![b'r'; n]));
        }
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        if let Some(ms) = std::str::from_utf8(&request.body)
            .ok()
            .and_then(|s| s.strip_prefix("sleep:"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.current.fetch_sub(1, Ordering::SeqCst);
        match request.command_id {
            cid::GROUP_CREATE_REQUEST => None,
            _ => Some(request.body),
        }
    }
}

struct Running {
    addr: SocketAddr,
    stats: Arc<Stats>,
    handler: Arc<Echo>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn shutdown(&mut self) -> Duration {
        let t = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap();
        t.elapsed()
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        heartbeat_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    }
}

async fn start(config: ServerConfig) -> Running {
    let handler = Arc::new(Echo::default());
    let server = Server::bind(config, handler.clone()).await.unwrap();
    let addr = server.local_addrs()[0];
    let stats = server.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        stats,
        handler,
        stop: Some(tx),
        task,
    }
}

async fn framed(addr: SocketAddr) -> Framed<TcpStream, PduCodec> {
    Framed::new(TcpStream::connect(addr).await.unwrap(), PduCodec::default())
}

async fn next(f: &mut Framed<TcpStream, PduCodec>) -> Pdu {
    tokio::time::timeout(Duration::from_secs(5), f.next())
        .await
        .expect("timed out waiting for a PDU")
        .expect("connection closed")
        .expect("bad frame")
}

/// Reads until EOF (or error); returns whatever bytes came before it.
async fn read_to_eof(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let r = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "connection not closed within {within:?}");
    out
}

fn all_users(seq: u16, body: &'static str) -> Pdu {
    Pdu::new(sid::BUDDY_LIST, cid::BUDDY_LIST_ALL_USER_REQUEST, seq, body)
}

#[tokio::test]
async fn unknown_command_gets_no_reply_and_connection_stays() {
    let mut srv = start(config()).await;
    let mut c = framed(srv.addr).await;
    // CHANGE_AVATAR (not handled by the original) and a made-up id.
    c.send(Pdu::new(
        sid::BUDDY_LIST,
        cid::BUDDY_LIST_CHANGE_AVATAR_REQUEST,
        5,
        "x",
    ))
    .await
    .unwrap();
    c.send(Pdu::new(9, 0x0999, 6, "y")).await.unwrap();
    c.send(all_users(7, "hi")).await.unwrap();
    let r = next(&mut c).await;
    assert_eq!(r.seq_num, 7);
    assert_eq!(r.body.as_ref(), b"hi");
    assert_eq!(srv.stats.snapshot().unknown_commands, 2);
    srv.shutdown().await;
}

#[tokio::test]
async fn reply_header_from_table_and_seq_echo() {
    let mut srv = start(config()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // Service id in the request is ignored for dispatch: send 0x0703 under SID 3.
    let req = Pdu::new(3, cid::OTHER_VALIDATE_REQ, 0xbeef, "body");
    s.write_all(&req.to_bytes()).await.unwrap();
    let mut reply = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let expected = [
        0, 0, 0, 20, 0, 1, 0, 0, 0, 7, 0x07, 0x04, 0xbe, 0xef, 0, 0, b'b', b'o', b'd', b'y',
    ];
    assert_eq!(reply, expected);
    // MSG_DATA answers with the same command id under SID 3.
    let mut c = Framed::new(s, PduCodec::default());
    c.send(Pdu::new(7, cid::MSG_DATA, 1, "m")).await.unwrap();
    let r = next(&mut c).await;
    assert_eq!(
        (r.service_id, r.command_id, r.seq_num),
        (sid::MSG, cid::MSG_DATA, 1)
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn no_response_commands_never_answered() {
    let mut srv = start(config()).await;
    let mut c = framed(srv.addr).await;
    // READ_ACK: the handler returns Some, but the table says no response.
    c.send(Pdu::new(sid::MSG, cid::MSG_READ_ACK, 1, "a"))
        .await
        .unwrap();
    c.send(Pdu::new(sid::FILE, cid::FILE_ADD_OFFLINE_REQ, 2, "b"))
        .await
        .unwrap();
    // GROUP_CREATE: the handler returns None.
    c.send(Pdu::new(sid::GROUP, cid::GROUP_CREATE_REQUEST, 3, "c"))
        .await
        .unwrap();
    c.send(all_users(4, "d")).await.unwrap();
    let r = next(&mut c).await;
    assert_eq!(r.seq_num, 4);
    assert_eq!(srv.stats.snapshot().requests, 4);
    srv.shutdown().await;
}

#[tokio::test]
async fn many_in_flight_answered_out_of_order() {
    let mut srv = start(config()).await;
    let mut c = framed(srv.addr).await;
    c.send(all_users(1, "sleep:400")).await.unwrap();
    c.send(all_users(2, "sleep:0")).await.unwrap();
    c.send(all_users(3, "sleep:100")).await.unwrap();
    let order: Vec<u16> = vec![
        next(&mut c).await.seq_num,
        next(&mut c).await.seq_num,
        next(&mut c).await.seq_num,
    ];
    assert_eq!(order, vec![2, 3, 1]);

    // Through the Client too: 50 concurrent calls.
    let client = Client::connect(srv.addr).await.unwrap();
    let calls = (0..50).map(|i| {
        let client = client.clone();
        async move {
            let body = Bytes::from(format!("sleep:{}", (50 - i) * 2));
            let r = client
                .call_raw(
                    sid::BUDDY_LIST,
                    cid::BUDDY_LIST_ALL_USER_REQUEST,
                    body.clone(),
                )
                .await
                .unwrap();
            assert_eq!(r.body, body);
        }
    });
    futures::future::join_all(calls).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn in_flight_bounded_per_connection() {
    let mut srv = start(ServerConfig {
        max_in_flight_per_connection: 2,
        ..config()
    })
    .await;
    let mut c = framed(srv.addr).await;
    for seq in 1..=6 {
        c.send(all_users(seq, "sleep:100")).await.unwrap();
    }
    let mut seqs: Vec<u16> = Vec::new();
    for _ in 0..6 {
        seqs.push(next(&mut c).await.seq_num);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(srv.handler.peak.load(Ordering::SeqCst), 2);
    let took = srv.shutdown().await;
    assert!(
        took < Duration::from_secs(1),
        "quiet connection stops early: {took:?}"
    );
}

#[tokio::test]
async fn server_sends_heartbeat_when_silent() {
    let mut srv = start(ServerConfig {
        heartbeat_interval: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let t = Instant::now();
    let mut hb = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut hb))
        .await
        .unwrap()
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(hb, [0, 0, 0, 0x10, 0, 1, 0, 0, 0, 7, 7, 1, 0, 0, 0, 0]);
    assert!(srv.stats.snapshot().heartbeats_sent >= 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn idle_connection_closed() {
    let mut srv = start(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let t = Instant::now();
    let got = read_to_eof(&mut s, Duration::from_secs(3)).await;
    assert!(got.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(srv.stats.snapshot().idle_closed, 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn client_heartbeats_keep_connection_alive() {
    let mut srv = start(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let client = Client::connect_with(
        srv.addr,
        ClientOptions {
            heartbeat_interval: Some(Duration::from_millis(80)),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!client.is_closed());
    let r = client
        .call_raw(
            sid::BUDDY_LIST,
            cid::BUDDY_LIST_ALL_USER_REQUEST,
            "ok".into(),
        )
        .await
        .unwrap();
    assert_eq!(r.body.as_ref(), b"ok");
    assert!(srv.stats.snapshot().heartbeats_received >= 5);
    // The client stops heartbeating after the stop notice (as msg_server does), so the
    // connection goes quiet and shutdown does not wait for the whole grace period.
    let took = srv.shutdown().await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(*client.stop_notices().borrow(), 1);
}

#[tokio::test]
async fn framing_errors_close_only_that_connection() {
    let mut srv = start(ServerConfig {
        max_frame_len: 1024,
        ..config()
    })
    .await;
    let mut good = framed(srv.addr).await;
    let mut bad_lengths: Vec<u32> = (0..16).collect();
    bad_lengths.push(1025);
    bad_lengths.push(u32::MAX);
    for len in bad_lengths {
        let mut bad = TcpStream::connect(srv.addr).await.unwrap();
        let mut b = BytesMut::new();
        b.put_u32(len);
        b.put_slice(&[0, 1, 0, 0, 0, 2, 2, 8, 0, 1, 0, 0]);
        bad.write_all(&b).await.unwrap();
        read_to_eof(&mut bad, Duration::from_secs(3)).await;
        good.send(all_users(len as u16, "still here"))
            .await
            .unwrap();
        let r = next(&mut good).await;
        assert_eq!(r.seq_num, len as u16);
    }
    assert_eq!(srv.stats.snapshot().framing_errors, 18);
    // A frame of exactly max is fine.
    let body: &'static [u8] = Box::leak(vec![b'z'; 1024 - 16].into_boxed_slice());
    good.send(Pdu::new(2, cid::BUDDY_LIST_ALL_USER_REQUEST, 9, body))
        .await
        .unwrap();
    assert_eq!(next(&mut good).await.body.len(), 1008);
    srv.shutdown().await;
}

#[tokio::test]
async fn shutdown_notifies_drains_and_returns_within_grace() {
    let grace = Duration::from_millis(1500);
    let mut srv = start(ServerConfig {
        shutdown_grace: grace,
        shutdown_quiet: Duration::from_millis(250),
        shutdown_flush: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&all_users(1, "sleep:600").to_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stop = srv.stop.take().unwrap();
    let t = Instant::now();
    stop.send(()).unwrap();
    // First thing on the wire: exactly the stop-receive notice.
    let mut notice = [0u8; 18];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut notice))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        notice,
        [0, 0, 0, 0x12, 0, 1, 0, 0, 0, 7, 7, 2, 0, 0, 0, 0, 8, 0]
    );
    // Lame duck: a request arriving after the notice is still served.
    s.write_all(&all_users(2, "late").to_bytes()).await.unwrap();
    let rest = read_to_eof(&mut s, Duration::from_secs(3)).await;
    let mut buf = BytesMut::from(&rest[..]);
    let mut codec = PduCodec::default();
    let mut seqs = Vec::new();
    while let Some(p) = tokio_util::codec::Decoder::decode(&mut codec, &mut buf).unwrap() {
        seqs.push(p.seq_num);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2], "both replies delivered before close");
    let idle_rest = read_to_eof(&mut idle, Duration::from_secs(3)).await;
    assert_eq!(idle_rest, Pdu::stop_receive().to_bytes().to_vec());
    (&mut srv.task).await.unwrap();
    let took = t.elapsed();
    assert!(took < grace, "run returned after {took:?}");
    // Not accepting any more.
    assert!(TcpStream::connect(srv.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_bounded_by_grace_with_slow_handler() {
    let grace = Duration::from_millis(500);
    let mut srv = start(ServerConfig {
        shutdown_grace: grace,
        shutdown_flush: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut c = framed(srv.addr).await;
    c.send(all_users(1, "sleep:10000")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = srv.shutdown().await;
    assert!(took < grace + Duration::from_millis(600), "{took:?}");
}

#[tokio::test]
async fn connection_limit_closes_extra_sockets() {
    let mut srv = start(ServerConfig {
        max_connections: 1,
        ..config()
    })
    .await;
    let mut first = framed(srv.addr).await;
    first.send(all_users(1, "a")).await.unwrap();
    assert_eq!(next(&mut first).await.seq_num, 1);
    let mut second = TcpStream::connect(srv.addr).await.unwrap();
    read_to_eof(&mut second, Duration::from_secs(2)).await;
    assert_eq!(srv.stats.snapshot().connections_rejected, 1);
    drop(first);
    // Once the slot frees, a new connection is served.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut third = framed(srv.addr).await;
        third.send(all_users(3, "c")).await.unwrap();
        if let Ok(Some(Ok(p))) =
            tokio::time::timeout(Duration::from_millis(500), third.next()).await
        {
            assert_eq!(p.seq_num, 3);
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn listens_on_every_address() {
    let handler = Arc::new(Echo::default());
    let server = Server::bind(
        ServerConfig {
            listen: vec![
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
            ],
            ..config()
        },
        handler,
    )
    .await
    .unwrap();
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 2);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    for (i, addr) in addrs.iter().enumerate() {
        let mut c = framed(*addr).await;
        c.send(all_users(i as u16 + 1, "x")).await.unwrap();
        assert_eq!(next(&mut c).await.seq_num, i as u16 + 1);
    }
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(matches!(
        Server::bind(
            ServerConfig {
                listen: vec![],
                ..config()
            },
            Arc::new(Echo::default())
        )
        .await,
        Err(dbproxy_transport::Error::NoListenAddress)
    ));
}

#[tokio::test]
async fn peer_that_stops_reading_is_closed_after_write_timeout() {
    let srv = start(ServerConfig {
        write_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    // Ask for large replies and never read them: the socket buffers fill up.
    let mut stuck = framed(srv.addr).await;
    let body: &'static str = Box::leak("x".repeat(1 << 20).into_boxed_str());
    for seq in 0..64 {
        // Reading from it pauses once its replies are not drained, and the write timeout
        // then closes it: the later sends may fail.
        if stuck.send(all_users(seq, body)).await.is_err() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.stats.snapshot().write_timeouts == 0 {
        assert!(Instant::now() < deadline, "write timeout never fired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server still serves everyone else.
    let mut other = framed(srv.addr).await;
    other.send(all_users(7, "ping")).await.unwrap();
    assert_eq!(&next(&mut other).await.body[..], b"ping");
}

/// A peer with a small receive buffer that sends `requests` asks for `reply`-byte replies
/// and never reads.
async fn non_reading_peer(addr: SocketAddr, requests: u16, reply: usize) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut f = Framed::new(stream, PduCodec::default());
    let body: &'static str = Box::leak(format!("big:{reply}").into_boxed_str());
    for seq in 0..requests {
        f.feed(all_users(seq, body)).await.unwrap();
    }
    SinkExt::<Pdu>::flush(&mut f).await.unwrap();
    f.into_inner()
}

/// Waits until the handler has not been called for 300 ms; returns the calls so far.
async fn settled_calls(srv: &Running) -> usize {
    let mut last = srv.handler.calls.load(Ordering::SeqCst);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = srv.handler.calls.load(Ordering::SeqCst);
        if now == last {
            return now;
        }
        last = now;
    }
}

const REPLY: usize = 100_000;
const FRAME: u64 = REPLY as u64 + 16;

/// A peer that asks for many large replies and never reads holds about its connection's
/// reply limit: reading from it pauses (the handler is not called for the rest), and the
/// bytes leave the count when the connection is closed. Without the limit it held up to
/// ~130 replies (in-flight cap plus the writer's queue).
#[tokio::test]
async fn peer_that_does_not_read_holds_at_most_its_reply_limit() {
    let limit = 1 << 20;
    let srv = start(ServerConfig {
        max_reply_bytes_per_connection: limit,
        write_timeout: Duration::from_secs(60),
        ..config()
    })
    .await;
    let stuck = non_reading_peer(srv.addr, 1000, REPLY).await;
    let calls = settled_calls(&srv).await;
    // The peer's first requests were admitted before any reply showed their size: at most
    // an eighth of the limit each, so these stay within it too.
    let s = srv.stats.snapshot();
    assert!(s.reads_paused >= 1, "{s:?}");
    assert!(calls < 1000, "every request was read: {calls}");
    assert!(
        s.reply_bytes_queued <= limit as u64 + FRAME,
        "queued {} bytes with a limit of {limit} (calls {calls})",
        s.reply_bytes_queued
    );
    assert!(s.reply_bytes_queued >= limit as u64 - FRAME, "{s:?}");

    // Others are still served while it is stuck.
    let mut other = framed(srv.addr).await;
    other.send(all_users(7, "ping")).await.unwrap();
    assert_eq!(&next(&mut other).await.body[..], b"ping");

    drop(stuck);
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.snapshot().reply_bytes_queued != 0 {
        assert!(
            Instant::now() < deadline,
            "reply bytes of a closed peer still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With several non-reading peers the total limit pauses every connection once reached:
/// the total settles within the limit plus what each connection had admitted (at most its
/// own limit), far below what the peers asked for.
#[tokio::test]
async fn reply_bytes_of_all_connections_are_bounded_by_the_total() {
    let (per_connection, total, peers) = (1 << 20, 1 << 20, 6u64);
    let srv = start(ServerConfig {
        max_reply_bytes_per_connection: per_connection,
        max_reply_bytes_total: total,
        write_timeout: Duration::from_secs(60),
        ..config()
    })
    .await;
    let mut stuck = Vec::new();
    for _ in 0..peers {
        stuck.push(non_reading_peer(srv.addr, 500, REPLY).await);
    }
    let calls = settled_calls(&srv).await;
    let s = srv.stats.snapshot();
    assert!(
        s.reply_bytes_queued <= (total + per_connection) as u64 + peers * FRAME,
        "queued {} bytes, total limit {total} (calls {calls})",
        s.reply_bytes_queued
    );
    assert!(calls < (peers as usize) * 500 / 4, "calls {calls}");
    drop(stuck);
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.snapshot().reply_bytes_queued != 0 {
        assert!(Instant::now() < deadline, "reply bytes still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replies that are read do not stay counted, and a reading peer gets everything.
#[tokio::test]
async fn reply_bytes_drain_to_zero_for_a_reading_peer() {
    let srv = start(config()).await;
    let mut f = framed(srv.addr).await;
    for seq in 0..200u16 {
        f.feed(all_users(seq, "big:50000")).await.unwrap();
    }
    SinkExt::<Pdu>::flush(&mut f).await.unwrap();
    for _ in 0..200 {
        assert_eq!(next(&mut f).await.body.len(), 50_000);
    }
    let s = srv.stats.snapshot();
    assert_eq!(s.reply_bytes_queued, 0, "{s:?}");
    assert_eq!(s.requests_in_flight, 0, "{s:?}");
}
