//! Message commands end to end over TCP: send (single/group, text/voice), read-ack,
//! unread counts, lists, latest id, by ids, recent sessions and session removal.

use crate::common::*;
use bytes::Bytes;
use dbproxy_action::ActionSettings;
use dbproxy_model::group::NewGroup;
use dbproxy_protocol::cid;
use dbproxy_protocol::pb::im::base_define::{MsgType, SessionType};
use dbproxy_protocol::pb::im::buddy::*;
use dbproxy_protocol::pb::im::message::*;
use dbproxy_protocol::Client;
use dbproxy_testkit::FakeMsfs;
use prost::Message;

fn text(from: u32, to: u32, kind: MsgType, data: &[u8], t: u32) -> ImMsgData {
    ImMsgData {
        from_user_id: from,
        to_session_id: to,
        msg_id: 0,
        create_time: t,
        msg_type: kind as i32,
        msg_data: Bytes::copy_from_slice(data),
        attach_data: attach(),
    }
}

async fn send(c: &Client, m: &ImMsgData) -> u32 {
    let r: ImMsgData = call(c, cid::MSG_DATA, m).await;
    assert_eq!(
        r,
        ImMsgData {
            msg_id: r.msg_id,
            ..m.clone()
        },
        "echo of the request"
    );
    r.msg_id
}

async fn unread(c: &Client, user: u32) -> ImUnreadMsgCntRsp {
    call(
        c,
        cid::MSG_UNREAD_CNT_REQUEST,
        &ImUnreadMsgCntReq {
            user_id: user,
            attach_data: None,
        },
    )
    .await
}

async fn list(c: &Client, user: u32, peer: u32, kind: SessionType, begin: u32, n: u32) -> Vec<u32> {
    let r: ImGetMsgListRsp = call(
        c,
        cid::MSG_LIST_REQUEST,
        &ImGetMsgListReq {
            user_id: user,
            session_type: kind as i32,
            session_id: peer,
            msg_id_begin: begin,
            msg_cnt: n,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(
        (r.user_id, r.session_id, r.msg_id_begin),
        (user, peer, begin)
    );
    r.msg_list.iter().map(|m| m.msg_id).collect()
}

async fn recent(c: &Client, user: u32) -> Vec<ContactSessionInfo> {
    let r: ImRecentContactSessionRsp = call(
        c,
        cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST,
        &ImRecentContactSessionReq {
            user_id: user,
            latest_update_time: 0,
            attach_data: None,
        },
    )
    .await;
    r.contact_session_list
}

use dbproxy_protocol::pb::im::base_define::ContactSessionInfo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_chat_round_trip() {
    let srv = TestServer::start().await;
    let c = srv.client().await;
    let (a, b) = (srv.user("alice").await, srv.user("bob").await);

    // 20 messages in a row get consecutive ids; content is stored verbatim.
    for i in 1..=20u32 {
        let body = format!("msg {i} it's \"quoted\" \\ ' OR 1=1 -- 😀");
        assert_eq!(
            send(
                &c,
                &text(a, b, MsgType::SingleText, body.as_bytes(), 5000 + i)
            )
            .await,
            i
        );
    }
    // Exact reply bytes: header ids, seq echo, body = request with msg_id, attach echoed.
    let req = text(b, a, MsgType::SingleText, b"hi", 6000);
    let pdu = call_pdu(&c, cid::MSG_DATA, &req).await;
    assert_eq!((pdu.service_id, pdu.command_id), (3, cid::MSG_DATA));
    let mut expected = ImMsgData {
        msg_id: 21,
        ..req.clone()
    }
    .encode_to_vec();
    assert_eq!(&pdu.body[..], &expected[..]);
    assert!(expected.ends_with(&[0xa2, 0x01, 12, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0]));

    // Unknown fields of the request are echoed after the known ones.
    let mut raw = text(a, b, MsgType::SingleText, b"x", 6001).encode_to_vec();
    raw.extend_from_slice(&[0xf0, 0x01, 0x2a]); // field 30, varint 42
    let pdu = c
        .call_raw(3, cid::MSG_DATA, Bytes::from(raw))
        .await
        .unwrap();
    expected = ImMsgData {
        msg_id: 22,
        ..text(a, b, MsgType::SingleText, b"x", 6001)
    }
    .encode_to_vec();
    expected.extend_from_slice(&[0xf0, 0x01, 0x2a]);
    assert_eq!(&pdu.body[..], &expected[..]);

    // Self message → 0; empty msg_data → no reply.
    assert_eq!(
        send(&c, &text(a, a, MsgType::SingleText, b"me", 1)).await,
        0
    );
    assert_no_reply(
        &srv,
        cid::MSG_DATA,
        &text(a, b, MsgType::SingleText, b"", 1),
    )
    .await;

    // Unread of bob: 21 from alice, newest is #22, from = peer (Q-M06).
    let u = unread(&c, b).await;
    assert_eq!(u.total_cnt, 21);
    assert_eq!(u.unreadinfo_list.len(), 1);
    let e = &u.unreadinfo_list[0];
    assert_eq!(
        (e.session_id, e.session_type, e.unread_cnt, e.latest_msg_id),
        (a, 1, 21, 22)
    );
    assert_eq!(
        (e.latest_msg_from_user_id, &e.latest_msg_data[..]),
        (a, &b"x"[..])
    );
    assert_eq!(unread(&c, a).await.total_cnt, 1);

    // Lists: newest first, paging by msg_id_begin, msg_cnt 0 → empty, both directions.
    assert_eq!(
        list(&c, b, a, SessionType::Single, 0, 5).await,
        vec![22, 21, 20, 19, 18]
    );
    assert_eq!(
        list(&c, a, b, SessionType::Single, 10, 3).await,
        vec![10, 9, 8]
    );
    assert!(list(&c, b, a, SessionType::Single, 0, 0).await.is_empty());
    assert!(list(&c, b, 999_999, SessionType::Single, 0, 10)
        .await
        .is_empty());
    let full: ImGetMsgListRsp = call(
        &c,
        cid::MSG_LIST_REQUEST,
        &ImGetMsgListReq {
            user_id: b,
            session_type: 1,
            session_id: a,
            msg_id_begin: 3,
            msg_cnt: 1,
            attach_data: attach(),
        },
    )
    .await;
    let m = &full.msg_list[0];
    assert_eq!(
        (m.msg_id, m.from_session_id, m.create_time, m.msg_type),
        (3, a, 5003, 1)
    );
    assert_eq!(
        &m.msg_data[..],
        "msg 3 it's \"quoted\" \\ ' OR 1=1 -- 😀".as_bytes()
    );
    assert_eq!(full.attach_data, attach());

    // Latest id and lookup by ids (unknown ids vanish, empty list → empty).
    let latest: ImGetLatestMsgIdRsp = call(
        &c,
        cid::MSG_GET_LATEST_MSG_ID_REQ,
        &ImGetLatestMsgIdReq {
            user_id: b,
            session_type: 1,
            session_id: a,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(latest.latest_msg_id, 22);
    let by_id: ImGetMsgByIdRsp = call(
        &c,
        cid::MSG_GET_BY_MSG_ID_REQ,
        &ImGetMsgByIdReq {
            user_id: b,
            session_type: 1,
            session_id: a,
            msg_id_list: vec![3, 5, 999],
            attach_data: None,
        },
    )
    .await;
    assert_eq!(
        by_id.msg_list.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        vec![5, 3]
    );
    let none: ImGetMsgByIdRsp = call(
        &c,
        cid::MSG_GET_BY_MSG_ID_REQ,
        &ImGetMsgByIdReq {
            user_id: b,
            session_type: 1,
            session_id: a,
            msg_id_list: vec![],
            attach_data: None,
        },
    )
    .await;
    assert!(none.msg_list.is_empty());

    // Read-ack (no reply) clears the whole session, proven by the following unread.
    c.send(
        cid::MSG_READ_ACK,
        &ImMsgDataReadAck {
            user_id: b,
            session_id: a,
            msg_id: 3,
            session_type: 1,
        },
    )
    .await
    .unwrap();
    eventually("bob's unread cleared", || async {
        unread(&c, b).await.total_cnt == 0
    })
    .await;

    // Recent sessions: one per side with the newest message.
    let sessions = recent(&c, b).await;
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(
        (
            s.session_id,
            s.session_type,
            s.session_status,
            s.latest_msg_id
        ),
        (a, 1, 0, 22)
    );
    assert_eq!(s.latest_msg_from_user_id, a);
    assert_eq!(recent(&c, a).await.len(), 1);

    // Remove session: 0 the first time, 1 when already removed; a new message revives it.
    let remove = ImRemoveSessionReq {
        user_id: b,
        session_type: 1,
        session_id: a,
        attach_data: attach(),
    };
    let r: ImRemoveSessionRsp = call(&c, cid::BUDDY_LIST_REMOVE_SESSION_REQ, &remove).await;
    assert_eq!(
        r,
        ImRemoveSessionRsp {
            user_id: b,
            result_code: 0,
            session_type: 1,
            session_id: a,
            attach_data: attach()
        }
    );
    let r: ImRemoveSessionRsp = call(&c, cid::BUDDY_LIST_REMOVE_SESSION_REQ, &remove).await;
    assert_eq!(r.result_code, 1);
    assert!(recent(&c, b).await.is_empty());
    assert_eq!(
        send(&c, &text(a, b, MsgType::SingleText, b"back", 7000)).await,
        23
    );
    assert_eq!(
        recent(&c, b).await.len(),
        1,
        "the receiver's session is reactivated"
    );

    // Content the utf8mb4 column cannot hold is not stored: msg_id 0 (Q-M03 fixed).
    assert_eq!(
        send(
            &c,
            &text(a, b, MsgType::SingleText, &[0xff, 0xfe, 0x00], 7001)
        )
        .await,
        0
    );
    assert_eq!(
        send(&c, &text(a, b, MsgType::SingleText, b"ok", 7002)).await,
        25
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chat_counters_and_join_time() {
    let srv = TestServer::start().await;
    let c = srv.client().await;
    let (a, b, d) = (
        srv.user("ann").await,
        srv.user("ben").await,
        srv.user("dan").await,
    );
    let now = dbproxy_action::now();
    let g = srv
        .env
        .store
        .groups()
        .create(
            &NewGroup {
                name: "team".into(),
                avatar: String::new(),
                creator: a,
                group_type: 1,
            },
            &[a, b],
            now,
        )
        .await
        .unwrap();

    for i in 1..=3u32 {
        assert_eq!(
            send(
                &c,
                &text(a, g, MsgType::GroupText, format!("g{i}").as_bytes(), now)
            )
            .await,
            i
        );
    }
    // A non-member's message is not stored and answered with msg_id 0 (Q-P10 fixed).
    assert_eq!(
        send(&c, &text(d, g, MsgType::GroupText, b"intruder", now)).await,
        0
    );
    assert_eq!(
        send(&c, &text(a, 424_242, MsgType::GroupText, b"nowhere", now)).await,
        0
    );

    let ub = unread(&c, b).await;
    assert_eq!(ub.total_cnt, 3);
    let e = &ub.unreadinfo_list[0];
    assert_eq!(
        (e.session_id, e.session_type, e.unread_cnt, e.latest_msg_id),
        (g, 2, 3, 3)
    );
    assert_eq!(
        (e.latest_msg_from_user_id, e.latest_msg_type),
        (a, MsgType::GroupText as i32)
    );
    assert_eq!(
        unread(&c, a).await.total_cnt,
        0,
        "the sender has read what it sent"
    );

    c.send(
        cid::MSG_READ_ACK,
        &ImMsgDataReadAck {
            user_id: b,
            session_id: g,
            msg_id: 3,
            session_type: 2,
        },
    )
    .await
    .unwrap();
    eventually("ben's group unread cleared", || async {
        unread(&c, b).await.total_cnt == 0
    })
    .await;

    assert_eq!(
        list(&c, b, g, SessionType::Group, 0, 10).await,
        vec![3, 2, 1]
    );
    assert_eq!(list(&c, b, g, SessionType::Group, 2, 10).await, vec![2, 1]);
    assert!(
        list(&c, d, g, SessionType::Group, 0, 10).await.is_empty(),
        "non-member sees nothing"
    );

    // A member added later does not see messages created before the join time.
    srv.env
        .store
        .groups()
        .insert_members(g, &[d], now + 10)
        .await
        .unwrap();
    assert!(list(&c, d, g, SessionType::Group, 0, 10).await.is_empty());
    assert_eq!(
        send(&c, &text(a, g, MsgType::GroupText, b"welcome", now + 20)).await,
        4
    );
    assert_eq!(list(&c, d, g, SessionType::Group, 0, 10).await, vec![4]);

    let latest: ImGetLatestMsgIdRsp = call(
        &c,
        cid::MSG_GET_LATEST_MSG_ID_REQ,
        &ImGetLatestMsgIdReq {
            user_id: d,
            session_type: 2,
            session_id: g,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(latest.latest_msg_id, 4);

    // The sender's group session carries the newest message and its real sender.
    let s = recent(&c, a).await;
    assert_eq!(
        (s[0].session_id, s[0].session_type, s[0].latest_msg_id),
        (g, 2, 4)
    );
    assert_eq!(s[0].latest_msg_from_user_id, a);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_messages_via_msfs() {
    let msfs = FakeMsfs::start(false).await;
    let site = msfs.site.clone();
    let srv = TestServer::start_with(move |c| c.msfs_url = site, ActionSettings::default()).await;
    let c = srv.client().await;
    let (a, b) = (srv.user("vic").await, srv.user("val").await);

    let mut voice = 7u32.to_be_bytes().to_vec();
    voice.extend_from_slice(b"\x00AUDIO'bytes\xff");
    assert_eq!(
        send(&c, &text(a, b, MsgType::SingleAudio, &voice, 100)).await,
        1
    );
    assert_eq!(msfs.uploads(), vec![voice[4..].to_vec()]);

    // The list expands the stored audio id back into duration + payload.
    let r: ImGetMsgListRsp = call(
        &c,
        cid::MSG_LIST_REQUEST,
        &ImGetMsgListReq {
            user_id: b,
            session_type: 1,
            session_id: a,
            msg_id_begin: 0,
            msg_cnt: 10,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(r.msg_list.len(), 1);
    assert_eq!(
        (r.msg_list[0].msg_type, &r.msg_list[0].msg_data[..]),
        (2, &voice[..])
    );

    // Session and unread lists show the encrypted placeholder instead.
    let placeholder = b"QhGXlpFjvMFUNrtl1aaPzA==";
    assert_eq!(&recent(&c, b).await[0].latest_msg_data[..], placeholder);
    assert_eq!(
        &unread(&c, b).await.unreadinfo_list[0].latest_msg_data[..],
        placeholder
    );

    // Too short: nothing stored, msg_id 0, but the id is still allocated (Q-M02).
    assert_eq!(
        send(&c, &text(a, b, MsgType::SingleAudio, &[0, 0, 0, 1], 101)).await,
        0
    );
    assert_eq!(
        send(&c, &text(a, b, MsgType::SingleText, b"t", 102)).await,
        3
    );
    drop(msfs);
    // msfs gone: upload fails, nothing stored, msg_id 0.
    assert_eq!(
        send(&c, &text(a, b, MsgType::SingleAudio, &voice, 103)).await,
        0
    );
    assert_eq!(list(&c, b, a, SessionType::Single, 0, 10).await, vec![3, 1]);
    srv.stop().await;
}

/// Many sends in flight at once over several connections (so the server coalesces their
/// lookups and writes): every message is acknowledged with its own id, stored once, and
/// the unread counters and lists add up exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_are_stored_once_with_exact_counts() {
    let srv = TestServer::start().await;
    let hub = srv.user("hub").await;
    let mut spokes = Vec::new();
    for i in 0..6 {
        spokes.push(srv.user(&format!("spoke{i}")).await);
    }
    let clients = [srv.client().await, srv.client().await, srv.client().await];
    const PER_SPOKE: u32 = 30;
    let mut tasks = Vec::new();
    for (n, &spoke) in spokes.iter().enumerate() {
        for k in 0..PER_SPOKE {
            let c = clients[(n + k as usize) % clients.len()].clone();
            tasks.push(tokio::spawn(async move {
                let body = format!("spoke {spoke} says {k} with 'quotes'");
                let m = text(spoke, hub, MsgType::SingleText, body.as_bytes(), 7000 + k);
                (spoke, send(&c, &m).await)
            }));
        }
    }
    let mut ids: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for t in tasks {
        let (spoke, id) = t.await.unwrap();
        ids.entry(spoke).or_default().push(id);
    }
    let c = &clients[0];
    for &spoke in &spokes {
        let mut got = ids.remove(&spoke).unwrap();
        got.sort_unstable();
        assert_eq!(
            got,
            (1..=PER_SPOKE).collect::<Vec<_>>(),
            "ids of spoke {spoke}"
        );
        let mut stored = list(c, hub, spoke, SessionType::Single, 0, 100).await;
        stored.sort_unstable();
        assert_eq!(stored, (1..=PER_SPOKE).collect::<Vec<_>>(), "stored once");
    }
    let u = unread(c, hub).await;
    assert_eq!(u.total_cnt, PER_SPOKE * spokes.len() as u32);
    assert_eq!(u.unreadinfo_list.len(), spokes.len());
    for e in &u.unreadinfo_list {
        assert!(spokes.contains(&e.session_id));
        assert_eq!((e.unread_cnt, e.latest_msg_id > 0), (PER_SPOKE, true));
    }
    // Every spoke's session of the hub and the hub's sessions exist once.
    let sessions = recent(c, hub).await;
    let mut peers: Vec<u32> = sessions.iter().map(|s| s.session_id).collect();
    peers.sort_unstable();
    let mut want = spokes.clone();
    want.sort_unstable();
    assert_eq!(peers, want);
}
