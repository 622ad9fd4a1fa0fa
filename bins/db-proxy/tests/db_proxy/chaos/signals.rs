//! SIGTERM while 50 connections send as fast as they can: every peer gets the 0x0702 stop
//! notice, every request it sent before it saw the notice is answered, and the process
//! exits 0 within the grace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbproxy_protocol::pb::im::base_define::MsgType;
use dbproxy_protocol::pb::im::message::ImMsgData;
use dbproxy_protocol::{cid, sid, Pdu, PduCodec};
use dbproxy_testkit::TestEnv;
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::scaled;
use crate::common::binary::Binary;
use crate::common::insert_user;

/// Requests a connection keeps outstanding.
const DEPTH: usize = 8;

/// What one peer saw: (requests sent, replies received, notice seen).
async fn peer(addr: std::net::SocketAddr, from: u32, to: u32) -> (u32, u32, bool) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, PduCodec::default());
    let mut writer = FramedWrite::new(w, PduCodec::default());
    let noticed = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Semaphore::new(DEPTH));
    let send = {
        let noticed = noticed.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            let mut sent = 0u32;
            loop {
                let permit = slots.acquire().await.unwrap();
                if noticed.load(Ordering::SeqCst) {
                    break;
                }
                permit.forget();
                let body = ImMsgData {
                    from_user_id: from,
                    to_session_id: to,
                    msg_id: 0,
                    create_time: 1000,
                    msg_type: MsgType::SingleText as i32,
                    msg_data: Bytes::from(format!("term-{from}-{sent}")),
                    attach_data: None,
                }
                .encode_to_vec();
                let pdu = Pdu::new(sid::MSG, cid::MSG_DATA, sent as u16, body);
                if writer.send(pdu).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };
    let mut replies = 0u32;
    let mut notice = false;
    while let Some(frame) = reader.next().await {
        let Ok(pdu) = frame else { break };
        if pdu.command_id == cid::OTHER_STOP_RECV_PACKET {
            notice = true;
            noticed.store(true, Ordering::SeqCst);
            // Wake the sender so it sees the notice and stops.
            slots.add_permits(1);
        } else if pdu.command_id == cid::MSG_DATA {
            replies += 1;
            slots.add_permits(1);
        }
    }
    noticed.store(true, Ordering::SeqCst);
    slots.add_permits(DEPTH);
    let sent = send.await.unwrap();
    (sent, replies, notice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_fifty_sending_connections() {
    let env = TestEnv::new().await;
    let peers = scaled(50, 200);
    let mut pairs = Vec::new();
    for i in 0..peers {
        let a = insert_user(&env, &format!("term_a{i}")).await;
        let b = insert_user(&env, &format!("term_b{i}")).await;
        pairs.push((a, b));
    }
    let grace = Duration::from_millis(2000);
    let mut proxy = Binary::start(&env, 1, "shutdown_grace_ms = 2000");
    let mut tasks = Vec::new();
    for &(a, b) in &pairs {
        tasks.push(tokio::spawn(peer(proxy.addr, a, b)));
    }
    tokio::time::sleep(Duration::from_millis(scaled(700, 3000))).await;
    let term = Instant::now();
    proxy.signal("TERM");
    let mut total = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let (sent, replies, notice) = t.await.unwrap();
        assert!(notice, "peer {i} got no stop notice");
        assert_eq!(replies, sent, "peer {i}: {sent} sent, {replies} answered");
        total += sent;
    }
    let status = proxy
        .wait_exit(grace + Duration::from_secs(3))
        .expect("db-proxy did not exit within the grace");
    let took = term.elapsed();
    eprintln!("SIGTERM with {peers} senders: {total} requests, all answered; exit {status} after {took:?}");
    assert!(status.success(), "exit status {status}");
    assert!(total > peers as u32, "the peers did send");
    // Every answered send is stored (the notice does not cut acknowledged work).
    let stored = env.single_messages().await.len() as u32;
    assert_eq!(stored, total, "stored rows against answered sends");
    env.cleanup().await;
}
