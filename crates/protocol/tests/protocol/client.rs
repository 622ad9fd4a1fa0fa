//! The async Client against a tiny in-test server.

use std::time::Duration;

use bytes::Bytes;
use dbproxy_protocol::pb::im::{buddy, message, other};
use dbproxy_protocol::{cid, sid, Client, ClientOptions, Error, Pdu, PduCodec};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// Replies to every request (in reverse order of each batch of two) with the body echoed,
/// sends a heartbeat first and a stop notice after the first request; records what it got.
async fn fake_server() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Pdu>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::mpsc::channel(100);
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(sock, PduCodec::default());
        framed.send(Pdu::heartbeat()).await.unwrap();
        let mut held: Option<Pdu> = None;
        while let Some(Ok(pdu)) = framed.next().await {
            let _ = seen_tx.send(pdu.clone()).await;
            if pdu.command_id == cid::OTHER_HEARTBEAT || pdu.seq_num == 0 {
                continue;
            }
            let reply_cid = dbproxy_protocol::lookup(pdu.command_id)
                .and_then(|c| c.response)
                .map_or(pdu.command_id, |r| r.1);
            let reply = Pdu::new(pdu.service_id, reply_cid, pdu.seq_num, pdu.body.clone());
            if pdu.command_id == cid::BUDDY_LIST_ALL_USER_REQUEST {
                // Hold the first, answer after the second: out-of-order replies.
                match held.take() {
                    None => held = Some(reply),
                    Some(first) => {
                        framed.send(reply).await.unwrap();
                        framed.send(first).await.unwrap();
                    }
                }
                continue;
            }
            framed.send(reply).await.unwrap();
            framed.send(Pdu::stop_receive()).await.unwrap();
        }
    });
    (addr, seen_rx)
}

#[tokio::test]
async fn call_matches_by_seq_and_counts_stop_notices() {
    let (addr, mut seen) = fake_server().await;
    let client = Client::connect(addr).await.unwrap();
    let req = buddy::ImAllUserReq {
        user_id: 1,
        latest_update_time: 0,
        attach_data: None,
    };
    let (a, b) = tokio::join!(
        client.call(cid::BUDDY_LIST_ALL_USER_REQUEST, &req),
        client.call(cid::BUDDY_LIST_ALL_USER_REQUEST, &req),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.seq_num, b.seq_num);
    assert_eq!(a.command_id, cid::BUDDY_LIST_ALL_USER_RESPONSE);
    let first = seen.recv().await.unwrap();
    assert_eq!(first.service_id, sid::BUDDY_LIST);

    let mut stops = client.stop_notices();
    let info_req = buddy::ImUsersInfoReq {
        user_id: 1,
        user_id_list: vec![2, 3],
        attach_data: Some(Bytes::from_static(b"att")),
    };
    // The fake server echoes the body, so the "response" decodes as the request type.
    let rsp: buddy::ImUsersInfoReq = client
        .clone()
        .call_decode(cid::BUDDY_LIST_USER_INFO_REQUEST, &info_req)
        .await
        .unwrap();
    assert_eq!(rsp, info_req);
    assert_eq!(rsp.user_id, 1);
    let p = client
        .call_raw(sid::OTHER, 0x0799, Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(p.body.as_ref(), b"x");
    tokio::time::timeout(Duration::from_secs(5), stops.wait_for(|n| *n >= 1))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn no_response_commands_and_timeouts() {
    let (addr, mut seen) = fake_server().await;
    let opts = ClientOptions {
        request_timeout: Duration::from_millis(200),
        heartbeat_interval: Some(Duration::from_millis(50)),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(addr, opts).await.unwrap();
    let ack = message::ImMsgDataReadAck {
        user_id: 1,
        session_id: 2,
        msg_id: 3,
        session_type: 1,
    };
    assert!(matches!(
        client.call(cid::MSG_READ_ACK, &ack).await,
        Err(Error::NoResponse(_))
    ));
    client.send(cid::MSG_READ_ACK, &ack).await.unwrap();
    client.send_raw(Pdu::heartbeat().to_bytes()).await.unwrap();
    let got = seen.recv().await.unwrap();
    assert_eq!(got.command_id, cid::MSG_READ_ACK);
    // Client heartbeats arrive on their own.
    let hb = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let p = seen.recv().await.unwrap();
            if p.command_id == cid::OTHER_HEARTBEAT {
                return p;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(hb.service_id, sid::OTHER);
    let _ = other::ImHeartBeat {};
}

#[tokio::test]
async fn timeout_and_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(sock);
    });
    let opts = ClientOptions {
        request_timeout: Duration::from_millis(100),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(addr, opts).await.unwrap();
    let req = buddy::ImAllUserReq::default();
    assert!(matches!(
        client.call(cid::BUDDY_LIST_ALL_USER_REQUEST, &req).await,
        Err(Error::Timeout { .. })
    ));
    server.await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), client.closed())
        .await
        .unwrap();
    assert!(client.is_closed());
    assert!(matches!(
        client.call(cid::BUDDY_LIST_ALL_USER_REQUEST, &req).await,
        Err(Error::ConnectionClosed)
    ));
}
