//! Memory under hostile peers, measured on the real process (VmRSS): peers that ask for
//! large replies and never read are bounded by the reply-byte limits and closed after the
//! write timeout; connection storms past the connection limit are refused cleanly while a
//! good connection keeps being served; memory comes back after both.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbproxy_protocol::pb::im::base_define::SessionType;
use dbproxy_protocol::pb::im::message::{ImGetMsgListReq, ImGetMsgListRsp, ImMsgData};
use dbproxy_protocol::{cid, sid, Client, ClientOptions, Pdu, PduCodec};
use dbproxy_testkit::TestEnv;
use futures::SinkExt;
use prost::Message;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedWrite;

use super::{p99, scaled};
use crate::common::binary::Binary;
use crate::common::{insert_user, single_text};

const MIB: u64 = 1024;

/// Samples the process's RSS every 50 ms while `work` runs; returns the peak, KiB.
async fn peak_rss<F: std::future::Future>(proxy: &Binary, work: F) -> (F::Output, u64) {
    let mut peak = proxy.rss_kib();
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return (out, peak.max(proxy.rss_kib())),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                peak = peak.max(proxy.rss_kib());
            }
        }
    }
}

/// RSS after it stopped falling (or 5 s), KiB.
async fn settled_rss(proxy: &Binary) -> u64 {
    let mut last = proxy.rss_kib();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = proxy.rss_kib();
        if now >= last {
            return now;
        }
        last = now;
    }
    last
}

/// A peer with a small receive buffer that keeps sending `frame` and never reads, until
/// the server closes the connection (a send fails); the task ends then.
async fn non_reading_peer(addr: SocketAddr, frame: Pdu) -> tokio::task::JoinHandle<u32> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    tokio::spawn(async move {
        let mut w = FramedWrite::new(stream, PduCodec::default());
        let mut sent = 0u32;
        loop {
            let mut pdu = frame.clone();
            pdu.seq_num = sent as u16;
            if w.send(pdu).await.is_err() {
                return sent;
            }
            sent += 1;
        }
    })
}

/// 100 peers ask for 20-message lists of ~4 KB messages (~80 KB replies) and never read:
/// the process stays far below what the replies would take unbounded (~1 GiB measured
/// before the limits), the peers are closed after the write timeout, and the memory is
/// given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_never_read_are_bounded_and_closed() {
    let env = TestEnv::new().await;
    let (a, b) = (
        insert_user(&env, "mem_a").await,
        insert_user(&env, "mem_b").await,
    );
    let proxy = Binary::start(&env, 1, "write_timeout_ms = 3000");
    let c = Client::connect(proxy.addr).await.unwrap();
    for n in 0..20u32 {
        let reply: ImMsgData = c
            .call_decode(
                cid::MSG_DATA,
                &single_text(
                    a,
                    b,
                    1000 + n,
                    Bytes::from(vec![b'a' + (n % 26) as u8; 4000]),
                ),
            )
            .await
            .unwrap();
        assert_eq!(reply.msg_id, n + 1);
    }
    let list = ImGetMsgListReq {
        user_id: b,
        session_type: SessionType::Single as i32,
        session_id: a,
        msg_id_begin: 0,
        msg_cnt: 20,
        attach_data: None,
    };
    let reply: ImGetMsgListRsp = c.call_decode(cid::MSG_LIST_REQUEST, &list).await.unwrap();
    assert_eq!(reply.msg_list.len(), 20);
    let reply_len = reply.encoded_len();
    let before = settled_rss(&proxy).await;

    let frame = Pdu::new(sid::MSG, cid::MSG_LIST_REQUEST, 0, list.encode_to_vec());
    let peers = scaled(100, 300);
    let started = Instant::now();
    let (stuck, peak) = peak_rss(&proxy, async {
        let mut stuck = Vec::new();
        for _ in 0..peers {
            stuck.push(non_reading_peer(proxy.addr, frame.clone()).await);
        }
        tokio::time::sleep(Duration::from_millis(2000)).await;
        stuck
    })
    .await;
    eprintln!(
        "{peers} non-reading peers asking for {reply_len}-byte replies: RSS {} -> peak {} MiB",
        before / MIB,
        peak / MIB,
    );
    // The total limit (64 MiB) plus what each connection had admitted, plus the process;
    // without the limits 100 such peers held ~1 GiB.
    assert!(
        peak < before + 160 * MIB,
        "peak RSS {peak} KiB from {before} KiB"
    );
    // The write timeout (3 s) closes each of them (the server has replies it cannot write
    // while the peer keeps asking): its sends then fail.
    let mut requests = 0;
    for (i, peer) in stuck.into_iter().enumerate() {
        requests += tokio::time::timeout(Duration::from_secs(20), peer)
            .await
            .unwrap_or_else(|_| panic!("peer {i} was not closed"))
            .unwrap();
    }
    let closed_within = started.elapsed();
    let after = settled_rss(&proxy).await;
    eprintln!(
        "{requests} requests sent; all closed within {closed_within:?}; RSS after {} MiB",
        after / MIB
    );
    assert!(
        closed_within < Duration::from_secs(scaled(15, 40)),
        "{closed_within:?}"
    );
    assert!(
        after < before + scaled(40, 80) * MIB,
        "memory not given back: {after} KiB after, {before} KiB before"
    );
    // Still serving.
    let reply: ImGetMsgListRsp = c.call_decode(cid::MSG_LIST_REQUEST, &list).await.unwrap();
    assert_eq!(reply.msg_list.len(), 20);
    drop(proxy);
    env.cleanup().await;
}

/// Storms of 2,000 connections at once against a limit of 256: the connections past the
/// limit are closed at once, a good connection is answered throughout with a bounded p99,
/// and repeated storms do not ratchet memory up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_storms_past_the_limit_are_refused_with_bounded_memory() {
    let env = TestEnv::new().await;
    let (a, b) = (
        insert_user(&env, "storm_a").await,
        insert_user(&env, "storm_b").await,
    );
    let proxy = Binary::start(&env, 1, "max_connections = 256");
    let good = Client::connect_with(
        proxy.addr,
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    let before = settled_rss(&proxy).await;
    let storms = scaled(5, 20);
    let mut after_first = 0;
    let mut latencies = Vec::new();
    let mut peak = before;
    for storm in 0..storms {
        let addr = proxy.addr;
        let probe = {
            let good = good.clone();
            tokio::spawn(async move {
                let mut waits = Vec::new();
                for n in 0..40u32 {
                    let t = Instant::now();
                    let reply: ImMsgData = good
                        .call_decode(
                            cid::MSG_DATA,
                            &single_text(a, b, n, Bytes::from_static(b"during the storm")),
                        )
                        .await
                        .unwrap();
                    assert_ne!(reply.msg_id, 0);
                    waits.push(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                waits
            })
        };
        let ((accepted, refused), storm_peak) = peak_rss(&proxy, async move {
            let connects = (0..2000).map(|_| async move {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    return (0, 1); // refused by the kernel's backlog
                };
                // A socket past the limit is closed at once: its read ends quickly.
                let mut byte = [0u8; 1];
                match tokio::time::timeout(Duration::from_millis(1500), s.read(&mut byte)).await {
                    Ok(_) => (0, 1),
                    Err(_) => (1, 0),
                }
            });
            futures::future::join_all(connects)
                .await
                .into_iter()
                .fold((0, 0), |(a, r), (x, y)| (a + x, r + y))
        })
        .await;
        peak = peak.max(storm_peak);
        latencies.extend(probe.await.unwrap());
        assert!(
            accepted <= 256,
            "storm {storm}: {accepted} connections held past a limit of 256"
        );
        assert!(
            refused >= 2000 - 256,
            "storm {storm}: only {refused} refused"
        );
        let now = settled_rss(&proxy).await;
        if storm == 0 {
            after_first = now;
        }
        eprintln!(
            "storm {storm}: {accepted} held, {refused} refused; RSS {} MiB",
            now / MIB
        );
    }
    let last = settled_rss(&proxy).await;
    let p99 = p99(latencies);
    eprintln!(
        "{storms} storms: RSS {} -> after first {} -> last {} MiB (peak {} MiB); good connection p99 {p99:?}",
        before / MIB,
        after_first / MIB,
        last / MIB,
        peak / MIB
    );
    assert!(
        p99 < Duration::from_millis(500),
        "good connection p99 {p99:?}"
    );
    assert!(
        peak < before + 64 * MIB,
        "peak {peak} KiB from {before} KiB"
    );
    assert!(
        last < after_first + 8 * MIB,
        "storms ratchet memory: {after_first} KiB after the first, {last} KiB after {storms}"
    );
    drop(proxy);
    env.cleanup().await;
}
