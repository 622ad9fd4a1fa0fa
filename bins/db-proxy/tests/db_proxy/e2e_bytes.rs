//! Exact reply bytes for every one of the 23 replying commands, over a raw TCP socket:
//! the whole PDU (16-byte header: length, version 1, flag 0, response service and command
//! id of docs/compatibility.md#command-table, echoed seq_num, reserved 0; then the body) compared with bytes
//! written out by hand here — never produced by encoding the expected message.
//!
//! `A` is the 12-byte msg_server handle attach echoed as field 20; `E` is the empty field 20
//! every reply carries when the request had none (docs/compatibility.md#reply-construction-and-attach-data).

use crate::common::*;
use crate::raw::{frame, hex, Raw};
use bytes::Bytes;
use dbproxy_model::user::{password_hash, NewUser};
use dbproxy_protocol::pb::im::buddy::*;
use dbproxy_protocol::pb::im::file::{
    ImFileAddOfflineReq, ImFileHasOfflineReq, ImFileHasOfflineRsp,
};
use dbproxy_protocol::pb::im::group::*;
use dbproxy_protocol::pb::im::login::*;
use dbproxy_protocol::pb::im::message::*;
use dbproxy_protocol::pb::im::server::{ImGetDeviceTokenReq, ImGroupGetShieldReq};
use prost::Message;

/// Field 20 carrying `ATTACH` (type 1, handle 5, service type 0).
const A: &str = "a2 01 0c 00 00 00 01 00 00 00 05 00 00 00 00";
/// Field 20, empty.
const E: &str = "a2 01 00";
/// 2000000000 as a varint (later than any `updated` in these tests).
const T2E9: &str = "80 a8 d6 b9 07";

/// Sends `req_body` as (`req_sid`, `req_cid`, `seq`) and asserts the whole reply frame:
/// header with (`rsp_sid`, `rsp_cid`, `seq`) and exactly `rsp_body`.
#[allow(clippy::too_many_arguments)]
async fn expect(
    r: &mut Raw,
    req_sid: u16,
    req_cid: u16,
    seq: u16,
    req_body: &[u8],
    rsp_sid: u16,
    rsp_cid: u16,
    rsp_body: &str,
) {
    let reply = r.call(&frame(req_sid, req_cid, seq, req_body)).await;
    let body = hex(rsp_body);
    let mut want = Vec::new();
    want.extend_from_slice(&(16 + body.len() as u32).to_be_bytes()); // length incl. header
    want.extend_from_slice(&[0x00, 0x01]); // version 1
    want.extend_from_slice(&[0x00, 0x00]); // flag 0
    want.extend_from_slice(&rsp_sid.to_be_bytes());
    want.extend_from_slice(&rsp_cid.to_be_bytes());
    want.extend_from_slice(&seq.to_be_bytes());
    want.extend_from_slice(&[0x00, 0x00]); // reserved 0
    want.extend_from_slice(&body);
    assert_eq!(
        reply, want,
        "reply to {req_cid:#06x}:\n got  {reply:02x?}\n want {want:02x?}"
    );
}

fn enc(m: &impl Message) -> Vec<u8> {
    m.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replying_command_exact_bytes() {
    let srv = TestServer::start().await;
    let store = &srv.env.store;
    // alice = 1 (password is NOT 123456), bob = 2, carol = 3.
    let alice = store
        .users()
        .insert(
            &NewUser {
                name: "alice".into(),
                nick: "A".into(),
                domain: "d".into(),
                password: password_hash("not-123456", "1234"),
                salt: "1234".into(),
                sex: 1,
                phone: "1".into(),
                email: "e".into(),
                avatar: String::new(),
                depart_id: 1,
                status: 0,
                sign_info: String::new(),
            },
            1000,
        )
        .await
        .unwrap();
    assert_eq!(
        (alice, srv.user("bob").await, srv.user("carol").await),
        (1, 2, 3)
    );
    let mut r = Raw::connect(srv.addr).await;

    // 1. 0x0703 → 0x0704: docs/compatibility.md#byte-vectors vectors verbatim (request and reply, seq 7).
    let request = hex(
        "00 00 00 48 00 01 00 00 00 07 07 03 00 07 00 00 \
         0a 05 61 6c 69 63 65 12 20 \
         65 31 30 61 64 63 33 39 34 39 62 61 35 39 61 62 62 65 35 36 65 30 35 37 66 32 30 66 38 38 33 65 \
         a2 01 0c 00 00 00 01 00 00 00 05 00 00 00 00",
    );
    let reply = r.call(&request).await;
    assert_eq!(
        reply,
        hex(
            "00 00 00 40 00 01 00 00 00 07 07 04 00 07 00 00 0a 05 61 6c 69 63 65 10 01 1a 16 \
             e7 94 a8 e6 88 b7 e5 90 8d 2f e5 af 86 e7 a0 81 e9 94 99 e8 af af \
             a2 01 0c 00 00 00 01 00 00 00 05 00 00 00 00"
        )
    );

    // 2. 0x010c → 0x010d: bob's push shield set to 1 (result 0, shield_status 1).
    let req = enc(&ImPushShieldReq {
        user_id: 2,
        shield_status: 1,
        attach_data: attach(),
    });
    expect(
        &mut r,
        1,
        0x010c,
        0x1234,
        &req,
        1,
        0x010d,
        &format!("08 02 10 00 18 01 {A}"),
    )
    .await;

    // 3. 0x010e → 0x010f: bob's shield (no attach → empty field 20); unknown user → 1.
    let req = enc(&ImQueryPushShieldReq {
        user_id: 2,
        attach_data: None,
    });
    expect(
        &mut r,
        1,
        0x010e,
        3,
        &req,
        1,
        0x010f,
        &format!("08 02 10 00 18 01 {E}"),
    )
    .await;
    let req = enc(&ImQueryPushShieldReq {
        user_id: 404,
        attach_data: attach(),
    });
    expect(
        &mut r,
        1,
        0x010e,
        0xfffe,
        &req,
        1,
        0x010f,
        &format!("08 94 03 10 01 {A}"),
    )
    .await;

    // 4. 0x0201 → 0x0202: carol has no sessions.
    let req = enc(&ImRecentContactSessionReq {
        user_id: 3,
        latest_update_time: 0,
        attach_data: attach(),
    });
    expect(&mut r, 2, 0x0201, 4, &req, 2, 0x0202, &format!("08 03 {A}")).await;

    // 5. 0x0206 → 0x0207: no such session → result 1, the rest echoed.
    let req = enc(&ImRemoveSessionReq {
        user_id: 3,
        session_type: 1,
        session_id: 2,
        attach_data: None,
    });
    expect(
        &mut r,
        2,
        0x0206,
        5,
        &req,
        2,
        0x0207,
        &format!("08 03 10 01 18 01 20 02 {E}"),
    )
    .await;

    // 6. 0x0204 → 0x0205: alice's UserInfo (sign_info always present); 404 vanishes.
    let req = enc(&ImUsersInfoReq {
        user_id: 2,
        user_id_list: vec![1, 404],
        attach_data: attach(),
    });
    let alice_info = "08 01 10 01 1a 01 41 22 00 28 01 32 01 65 3a 05 61 6c 69 63 65 \
                      42 01 31 4a 01 64 50 00 5a 00";
    expect(
        &mut r,
        2,
        0x0204,
        6,
        &req,
        2,
        0x0205,
        &format!("08 02 12 1f {alice_info} {A}"),
    )
    .await;

    // 7. 0x0208 → 0x0209: nothing changed since T; T echoed.
    let req = enc(&ImAllUserReq {
        user_id: 2,
        latest_update_time: 2_000_000_000,
        attach_data: None,
    });
    expect(
        &mut r,
        2,
        0x0208,
        8,
        &req,
        2,
        0x0209,
        &format!("08 02 10 {T2E9} {E}"),
    )
    .await;

    // 8. 0x0210 → 0x0211: no department changed since T.
    let req = enc(&ImDepartmentReq {
        user_id: 2,
        latest_update_time: 2_000_000_000,
        attach_data: attach(),
    });
    expect(
        &mut r,
        2,
        0x0210,
        9,
        &req,
        2,
        0x0211,
        &format!("08 02 10 {T2E9} {A}"),
    )
    .await;

    // 9. 0x0213 → 0x0214: carol's signature "hi" (result 0, sign_info echoed).
    let req = enc(&ImChangeSignInfoReq {
        user_id: 3,
        sign_info: "hi".into(),
        attach_data: attach(),
    });
    expect(
        &mut r,
        2,
        0x0213,
        10,
        &req,
        2,
        0x0214,
        &format!("08 03 10 00 1a 02 68 69 {A}"),
    )
    .await;

    // 10. 0x0301 → 0x0301: alice → bob "hi" at 1000, with an unknown field 9 (= 42) before
    // field 20; the echo has msg_id 1 and re-emits the unknown field after the known ones.
    let req = hex(&format!(
        "08 01 10 02 18 00 20 e8 07 28 01 32 02 68 69 48 2a {A}"
    ));
    expect(
        &mut r,
        3,
        0x0301,
        11,
        &req,
        3,
        0x0301,
        &format!("08 01 10 02 18 01 20 e8 07 28 01 32 02 68 69 {A} 48 2a"),
    )
    .await;

    // 11. 0x0307 → 0x0308: bob has 1 unread from alice, newest message 1 "hi".
    let req = enc(&ImUnreadMsgCntReq {
        user_id: 2,
        attach_data: None,
    });
    let unread = "08 01 10 01 18 01 20 01 2a 02 68 69 30 01 38 01";
    expect(
        &mut r,
        3,
        0x0307,
        12,
        &req,
        3,
        0x0308,
        &format!("08 02 10 01 1a 10 {unread} {E}"),
    )
    .await;

    // 12. 0x0309 → 0x030a: bob's list with alice.
    let msg = "08 01 10 01 18 e8 07 20 01 2a 02 68 69";
    let req = enc(&ImGetMsgListReq {
        user_id: 2,
        session_type: 1,
        session_id: 1,
        msg_id_begin: 0,
        msg_cnt: 10,
        attach_data: attach(),
    });
    expect(
        &mut r,
        3,
        0x0309,
        13,
        &req,
        3,
        0x030a,
        &format!("08 02 10 01 18 01 20 00 2a 0d {msg} {A}"),
    )
    .await;

    // 13. 0x030b → 0x030c: latest id of alice/bob is 1.
    let req = enc(&ImGetLatestMsgIdReq {
        user_id: 1,
        session_type: 1,
        session_id: 2,
        attach_data: None,
    });
    expect(
        &mut r,
        3,
        0x030b,
        14,
        &req,
        3,
        0x030c,
        &format!("08 01 10 01 18 02 20 01 {E}"),
    )
    .await;

    // 14. 0x030d → 0x030e: ids 1 and 99 → only message 1.
    let req = enc(&ImGetMsgByIdReq {
        user_id: 1,
        session_type: 1,
        session_id: 2,
        msg_id_list: vec![1, 99],
        attach_data: attach(),
    });
    expect(
        &mut r,
        3,
        0x030d,
        15,
        &req,
        3,
        0x030e,
        &format!("08 01 10 01 18 02 22 0d {msg} {A}"),
    )
    .await;

    // 15. 0x0108 → 0x0109: carol's Android token "tk".
    let req = enc(&ImDeviceTokenReq {
        user_id: 3,
        device_token: "tk".into(),
        client_type: Some(0x12),
        attach_data: attach(),
    });
    expect(
        &mut r,
        1,
        0x0108,
        16,
        &req,
        1,
        0x0109,
        &format!("08 03 {A}"),
    )
    .await;

    // 16. 0x0705 → 0x0706: carol: type 0x12, token "tk", push_count 0, push_type 1.
    let req = enc(&ImGetDeviceTokenReq {
        user_id: vec![3],
        attach_data: attach(),
    });
    expect(
        &mut r,
        7,
        0x0705,
        17,
        &req,
        7,
        0x0706,
        &format!("0a 0c 08 03 10 12 1a 02 74 6b 20 00 28 01 {A}"),
    )
    .await;

    // 17. 0x0405 → 0x0406: groups 1 ("a", normal, members {1}) and 2 ("b", temporary),
    // then the docs/compatibility.md#byte-vectors group-create vector verbatim: user 1, group 3, "g", members 1 and 2.
    let create = |kind: i32, name: &str, members: Vec<u32>, attach_data: Option<Bytes>| {
        enc(&ImGroupCreateReq {
            user_id: 1,
            group_type: kind,
            group_name: Bytes::copy_from_slice(name.as_bytes()),
            group_avatar: Bytes::new(),
            member_id_list: members,
            attach_data,
        })
    };
    let req = create(1, "a", vec![1, 1], attach());
    expect(
        &mut r,
        4,
        0x0405,
        18,
        &req,
        4,
        0x0406,
        &format!("08 01 10 00 18 01 22 01 61 28 01 {A}"),
    )
    .await;
    let req = create(2, "b", vec![1], None);
    expect(
        &mut r,
        4,
        0x0405,
        19,
        &req,
        4,
        0x0406,
        &format!("08 01 10 00 18 02 22 01 62 28 01 {E}"),
    )
    .await;
    let req = create(1, "g", vec![2, 1], None);
    expect(
        &mut r,
        4,
        0x0405,
        20,
        &req,
        4,
        0x0406,
        "08 01 10 00 18 03 22 01 67 28 01 28 02 a2 01 00",
    )
    .await;

    // 18. 0x0401 → 0x0402: bob is only in group 3 (version 1).
    let req = enc(&ImNormalGroupListReq {
        user_id: 2,
        attach_data: attach(),
    });
    expect(
        &mut r,
        4,
        0x0401,
        21,
        &req,
        4,
        0x0402,
        &format!("08 02 12 04 08 03 10 01 {A}"),
    )
    .await;

    // 19. 0x0403 → 0x0404: group 3 asked with version 0.
    let req = enc(&ImGroupInfoListReq {
        user_id: 2,
        group_version_list: vec![dbproxy_protocol::pb::im::base_define::GroupVersionInfo {
            group_id: 3,
            version: 0,
        }],
        attach_data: None,
    });
    let info = "08 03 10 01 1a 01 67 22 00 28 01 30 01 38 00 40 01 40 02";
    expect(
        &mut r,
        4,
        0x0403,
        22,
        &req,
        4,
        0x0404,
        &format!("08 02 12 13 {info} {E}"),
    )
    .await;

    // 20. 0x0409 → 0x040a: bob shields group 3.
    let req = enc(&ImGroupShieldReq {
        user_id: 2,
        group_id: 3,
        shield_status: 1,
        attach_data: attach(),
    });
    expect(
        &mut r,
        4,
        0x0409,
        23,
        &req,
        4,
        0x040a,
        &format!("08 02 10 03 18 00 {A}"),
    )
    .await;

    // 21. 0x0711 → 0x0712: bob 1, alice 0, in request order.
    let req = enc(&ImGroupGetShieldReq {
        group_id: 3,
        user_id: vec![2, 1],
        attach_data: None,
    });
    expect(
        &mut r,
        7,
        0x0711,
        24,
        &req,
        7,
        0x0712,
        &format!("08 03 12 06 08 02 10 03 18 01 12 06 08 01 10 03 18 00 {E}"),
    )
    .await;

    // 22. 0x0407 → 0x0408: alice adds carol to group 3.
    let req = enc(&ImGroupChangeMemberReq {
        user_id: 1,
        change_type: 1,
        group_id: 3,
        member_id_list: vec![3],
        attach_data: attach(),
    });
    expect(
        &mut r,
        4,
        0x0407,
        25,
        &req,
        4,
        0x0408,
        &format!("08 01 10 01 18 00 20 03 28 01 28 02 28 03 30 03 {A}"),
    )
    .await;

    // 23. 0x0509 → 0x050a: one offline file for carol, added with 0x050b (no reply; its
    // effect awaited on a protocol client first).
    let add = enc(&ImFileAddOfflineReq {
        from_user_id: 1,
        to_user_id: 3,
        task_id: "t".into(),
        file_name: "f".into(),
        file_size: 5,
    });
    r.send(&frame(5, 0x050b, 26, &add)).await;
    let c = srv.client().await;
    let has = ImFileHasOfflineReq {
        user_id: 3,
        attach_data: attach(),
    };
    eventually("offline file stored", || async {
        let rsp: ImFileHasOfflineRsp = call(&c, 0x0509, &has).await;
        !rsp.offline_file_list.is_empty()
    })
    .await;
    expect(
        &mut r,
        5,
        0x0509,
        27,
        &enc(&has),
        5,
        0x050a,
        &format!("08 03 12 0a 08 01 12 01 74 1a 01 66 20 05 {A}"),
    )
    .await;
    srv.stop().await;
}
