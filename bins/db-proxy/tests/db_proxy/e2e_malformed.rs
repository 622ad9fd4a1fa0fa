//! Malformed traffic beside good traffic (docs/compatibility.md#frame-length-checks, docs/compatibility.md#request-processing-and-strict-decoding): one connection sends
//! garbage while another keeps getting correct answers. Framing errors (length < 16, a
//! length above the cap) close only the offending connection; body errors (undecodable
//! body, undeclared value of a required enum) and unknown command ids are dropped without
//! a reply and the connection keeps serving.

use crate::common::*;
use crate::raw::{body_of, frame, hex, seq_of, Raw};
use bytes::Bytes;
use dbproxy_protocol::pb::im::login::{
    ImDeviceTokenReq, ImDeviceTokenRsp, ImQueryPushShieldReq, ImQueryPushShieldRsp,
};
use dbproxy_protocol::pb::im::server::ImValidateRsp;
use dbproxy_protocol::{cid, Client};
use prost::Message;

/// The good connection's probe: bob's push shield (0, result 0), attach echoed.
async fn probe(good: &Client, bob: u32) {
    let r: ImQueryPushShieldRsp = call(
        good,
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        &ImQueryPushShieldReq {
            user_id: bob,
            attach_data: attach(),
        },
    )
    .await;
    assert_eq!(
        r,
        ImQueryPushShieldRsp {
            user_id: bob,
            result_code: 0,
            shield_status: Some(0),
            attach_data: attach(),
        }
    );
}

fn query(bob: u32) -> Vec<u8> {
    ImQueryPushShieldReq {
        user_id: bob,
        attach_data: None,
    }
    .encode_to_vec()
}

/// Asserts the next frame on `r` answers `seq` with bob's shield (so nothing was sent for
/// the bad requests before it), then that one more valid request is answered too.
async fn still_serving(r: &mut Raw, bob: u32, seq: u16) {
    r.send(&frame(
        1,
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        seq,
        &query(bob),
    ))
    .await;
    for s in [seq, seq + 1] {
        let f = if s == seq {
            r.read_frame().await
        } else {
            r.call(&frame(1, cid::LOGIN_REQ_QUERY_PUSH_SHIELD, s, &query(bob)))
                .await
        };
        assert_eq!(seq_of(&f), s, "a bad request got a reply: {f:02x?}");
        assert_eq!(
            ImQueryPushShieldRsp::decode(body_of(&f)).unwrap(),
            ImQueryPushShieldRsp {
                user_id: bob,
                result_code: 0,
                shield_status: Some(0),
                attach_data: Some(Bytes::new()),
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_one_connection_good_answers_on_another() {
    let srv = TestServer::start().await;
    let bob = srv.user("bob").await;
    let good = srv.client().await;
    probe(&good, bob).await;
    // Meanwhile a second good connection asks continuously until the end of the test.
    let stop = tokio_util::sync::CancellationToken::new();
    let busy = tokio::spawn({
        let (c, stop) = (srv.client().await, stop.clone());
        async move {
            let mut answered = 0u32;
            while !stop.is_cancelled() {
                probe(&c, bob).await;
                answered += 1;
            }
            answered
        }
    });

    // --- Body errors and unknown commands: no reply, connection stays open. ---
    let mut bad = Raw::connect(srv.addr).await;
    // Undecodable body for a known command (truncated varint / bad wire type).
    bad.send(&frame(
        1,
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        1,
        &hex("08 ff ff"),
    ))
    .await;
    bad.send(&frame(
        1,
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        2,
        &hex("0f 01"),
    ))
    .await;
    // Required field missing (user_id of 0x010e).
    bad.send(&frame(
        1,
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        3,
        &hex("a2 01 00"),
    ))
    .await;
    // Unknown command ids, under a real and a made-up service id.
    bad.send(&frame(7, 0x0799, 4, &query(bob))).await;
    bad.send(&frame(0xffff, 0x0000, 5, &hex("08 01"))).await;
    // Not handled by the original either (0x020c): dropped.
    bad.send(&frame(2, 0x020c, 6, &hex("08 01 12 01 61"))).await;
    // Undeclared value of a required enum: remove-session with session_type 7, message
    // list with session_type 9, message data with msg_type 5.
    bad.send(&frame(
        2,
        cid::BUDDY_LIST_REMOVE_SESSION_REQ,
        7,
        &hex("08 01 10 07 18 02"),
    ))
    .await;
    bad.send(&frame(
        3,
        cid::MSG_LIST_REQUEST,
        8,
        &hex("08 01 10 09 18 02 20 00 28 0a"),
    ))
    .await;
    bad.send(&frame(
        3,
        cid::MSG_DATA,
        9,
        &hex("08 01 10 02 18 00 20 01 28 05 32 01 61"),
    ))
    .await;
    probe(&good, bob).await;
    still_serving(&mut bad, bob, 100).await;

    // An undeclared value of an OPTIONAL enum is no error: the field reads as unset
    // (device token with client_type 99 → answered).
    let req = ImDeviceTokenReq {
        user_id: bob,
        device_token: "x".into(),
        client_type: None,
        attach_data: None,
    };
    let mut body = req.encode_to_vec();
    body.extend_from_slice(&hex("18 63"));
    let f = bad
        .call(&frame(1, cid::LOGIN_REQ_DEVICETOKEN, 200, &body))
        .await;
    assert_eq!(
        ImDeviceTokenRsp::decode(body_of(&f)).unwrap(),
        ImDeviceTokenRsp {
            user_id: bob,
            attach_data: Some(Bytes::new()),
        }
    );
    // The one parse failure with a reply: validate without a password → code 2, no attach.
    let f = bad
        .call(&frame(7, cid::OTHER_VALIDATE_REQ, 201, &hex("0a 01 61")))
        .await;
    let v = ImValidateRsp::decode(body_of(&f)).unwrap();
    assert_eq!(
        (v.result_code, v.result_string.as_deref(), v.attach_data),
        (2, Some("服务端内部错误"), None)
    );
    still_serving(&mut bad, bob, 300).await;

    // --- Framing errors: the offending connection is closed, nothing else. ---
    // Length 0 after a valid request on the same connection.
    bad.send(&hex("00 00 00 00 00 01 00 00 00 01 01 0e 00 01 00 00"))
        .await;
    bad.expect_closed().await;
    probe(&good, bob).await;

    // 1 <= length <= 15 (Q-P02: close instead of desynchronising).
    let mut short = Raw::connect(srv.addr).await;
    still_serving(&mut short, bob, 1).await;
    short
        .send(&hex(
            "00 00 00 05 00 01 00 00 00 01 01 0e 00 09 00 00 08 02",
        ))
        .await;
    short.expect_closed().await;
    probe(&good, bob).await;

    // A huge announced length (Q-P01: capped, closed at once without waiting for the body).
    let mut huge = Raw::connect(srv.addr).await;
    still_serving(&mut huge, bob, 1).await;
    huge.send(&hex("ff ff ff ff 00 01 00 00 00 01 01 0e 00 09 00 00"))
        .await;
    huge.expect_closed().await;
    probe(&good, bob).await;

    // Just above the default 4 MiB cap (4 MiB + 1), header only.
    let mut over = Raw::connect(srv.addr).await;
    over.send(&hex("00 40 00 01 00 01 00 00 00 01 01 0e 00 09 00 00"))
        .await;
    over.expect_closed().await;

    // The server never stopped: the good connection and a new one both answer.
    probe(&good, bob).await;
    assert!(!good.is_closed());
    let fresh = srv.client().await;
    probe(&fresh, bob).await;
    stop.cancel();
    let answered = busy.await.expect("concurrent prober");
    assert!(answered > 0);
    srv.stop().await;
}

/// Text that is not UTF-8 in a signature (0x0213) or a group's name or avatar (0x0405) gets
/// the failure reply, as a login with a bad body does, instead of no reply at all; nothing
/// is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_utf8_gets_the_failure_reply() {
    use dbproxy_protocol::pb::im::buddy::{ImChangeSignInfoReq, ImChangeSignInfoRsp};
    use dbproxy_protocol::pb::im::group::{ImGroupCreateReq, ImGroupCreateRsp};
    let srv = TestServer::start().await;
    let c = srv.client().await;
    let (alice, bob) = (srv.user("alice").await, srv.user("bob").await);
    let bad = Bytes::from_static(b"ok \xff\xfe bad");
    let r: ImChangeSignInfoRsp = call(
        &c,
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST,
        &ImChangeSignInfoReq {
            user_id: alice,
            sign_info: bad.clone(),
            attach_data: attach(),
        },
    )
    .await;
    assert_eq!((r.user_id, r.result_code, r.sign_info), (alice, 1, None));
    assert_eq!(r.attach_data, attach());
    for (name, avatar) in [(bad.clone(), Bytes::from("av")), ("g".into(), bad.clone())] {
        let r: ImGroupCreateRsp = call(
            &c,
            cid::GROUP_CREATE_REQUEST,
            &ImGroupCreateReq {
                user_id: alice,
                group_type: 2,
                group_name: name.clone(),
                group_avatar: avatar,
                member_id_list: vec![alice, bob],
                attach_data: attach(),
            },
        )
        .await;
        assert_eq!((r.result_code, r.group_id), (1, None));
        assert_eq!(r.group_name, name, "the name is echoed as sent");
    }
    let groups: i64 = srv.env.count_sql("SELECT COUNT(*) AS n FROM IMGroup").await;
    assert_eq!(groups, 0, "no group stored");
    let signs: i64 = srv
        .env
        .count_sql("SELECT COUNT(*) AS n FROM IMUser WHERE sign_info <> ''")
        .await;
    assert_eq!(signs, 0, "no signature stored");
    srv.stop().await;
}
