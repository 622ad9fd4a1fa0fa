//! Group, group-shield, device-token and offline-file commands end to end: a real server
//! over TCP, a real MariaDB database and a private Redis (whole decoded responses asserted).
//! The group-session sync task is tested beside `Actions` in crates/action/tests/group.rs.

use crate::common::*;
use crate::raw::{body_of, frame, seq_of, Raw};
use bytes::Bytes;
use dbproxy_model::Db;
use dbproxy_protocol::pb::im::base_define::{
    GroupInfo, GroupVersionInfo, OfflineFileInfo, ShieldStatus, UserTokenInfo,
};
use dbproxy_protocol::pb::im::file::{
    ImFileAddOfflineReq, ImFileDelOfflineReq, ImFileHasOfflineReq, ImFileHasOfflineRsp,
};
use dbproxy_protocol::pb::im::group::*;
use dbproxy_protocol::pb::im::login::{ImDeviceTokenReq, ImDeviceTokenRsp};
use dbproxy_protocol::pb::im::server::{
    ImGetDeviceTokenReq, ImGetDeviceTokenRsp, ImGroupGetShieldReq, ImGroupGetShieldRsp,
};
use dbproxy_protocol::{cid, Client};
use prost::Message;

const HOSTILE: &str = "' OR 1=1 -- \"q\" \\back\\ 😀🐉";

async fn create(
    c: &Client,
    creator: u32,
    kind: i32,
    name: &str,
    members: &[u32],
) -> ImGroupCreateRsp {
    call(
        c,
        cid::GROUP_CREATE_REQUEST,
        &ImGroupCreateReq {
            user_id: creator,
            group_type: kind,
            group_name: Bytes::copy_from_slice(name.as_bytes()),
            group_avatar: "av".into(),
            member_id_list: members.to_vec(),
            attach_data: attach(),
        },
    )
    .await
}

async fn change(
    c: &Client,
    user: u32,
    add: bool,
    g: u32,
    members: &[u32],
) -> ImGroupChangeMemberRsp {
    call(
        c,
        cid::GROUP_CHANGE_MEMBER_REQUEST,
        &ImGroupChangeMemberReq {
            user_id: user,
            change_type: if add { 1 } else { 2 },
            group_id: g,
            member_id_list: members.to_vec(),
            attach_data: attach(),
        },
    )
    .await
}

fn change_rsp(
    user: u32,
    add: bool,
    code: u32,
    g: u32,
    cur: &[u32],
    chg: &[u32],
) -> ImGroupChangeMemberRsp {
    ImGroupChangeMemberRsp {
        user_id: user,
        change_type: if add { 1 } else { 2 },
        result_code: code,
        group_id: g,
        cur_user_id_list: cur.to_vec(),
        chg_user_id_list: chg.to_vec(),
        attach_data: attach(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_info() {
    let srv = TestServer::start().await;
    let c = srv.client().await;

    // Failures: empty name / empty members → result 1, list still echoed, no group id.
    let r = create(&c, 1, 1, "", &[3, 2, 3]).await;
    assert_eq!(
        r,
        ImGroupCreateRsp {
            user_id: 1,
            result_code: 1,
            group_id: None,
            group_name: Bytes::new(),
            user_id_list: vec![2, 3],
            attach_data: attach(),
        }
    );
    assert_eq!(
        create(&c, 1, 1, "x", &[]).await,
        ImGroupCreateRsp {
            user_id: 1,
            result_code: 1,
            group_id: None,
            group_name: "x".into(),
            user_id_list: vec![],
            attach_data: attach(),
        }
    );

    let r = create(&c, 1, 1, HOSTILE, &[10, 9, 1, 9]).await;
    let g = r.group_id.expect("group id on success");
    assert_eq!(
        r,
        ImGroupCreateRsp {
            user_id: 1,
            result_code: 0,
            group_id: Some(g),
            group_name: HOSTILE.into(),
            user_id_list: vec![1, 9, 10],
            attach_data: attach(),
        }
    );
    let t = create(&c, 1, 2, "tmp", &[1]).await.group_id.unwrap();

    // Only normal groups are listed; no attach in the request → empty attach in the reply.
    let list: ImNormalGroupListRsp = call(
        &c,
        cid::GROUP_NORMAL_LIST_REQUEST,
        &ImNormalGroupListReq {
            user_id: 1,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(
        list,
        ImNormalGroupListRsp {
            user_id: 1,
            group_version_list: vec![GroupVersionInfo {
                group_id: g,
                version: 1
            }],
            attach_data: Some(Bytes::new()),
        }
    );

    let info = |versions: Vec<(u32, u32)>| ImGroupInfoListReq {
        user_id: 5,
        group_version_list: versions
            .into_iter()
            .map(|(group_id, version)| GroupVersionInfo { group_id, version })
            .collect(),
        attach_data: attach(),
    };
    let empty = ImGroupInfoListRsp {
        user_id: 5,
        group_info_list: vec![],
        attach_data: attach(),
    };
    let rsp: ImGroupInfoListRsp = call(
        &c,
        cid::GROUP_INFO_REQUEST,
        &info(vec![(g, 0), (t, 1), (999, 0)]),
    )
    .await;
    assert_eq!(
        rsp,
        ImGroupInfoListRsp {
            user_id: 5,
            group_info_list: vec![GroupInfo {
                group_id: g,
                version: 1,
                group_name: HOSTILE.into(),
                group_avatar: "av".into(),
                group_creator_id: 1,
                group_type: 1,
                shield_status: 0,
                // Lexicographic order of the decimal ids.
                group_member_list: vec![1, 10, 9],
            }],
            attach_data: attach(),
        }
    );
    // Duplicates: the last requested version wins.
    let rsp: ImGroupInfoListRsp = call(
        &c,
        cid::GROUP_INFO_REQUEST,
        &info(vec![(g, 0), (g, 1), (t, 0), (t, 5)]),
    )
    .await;
    assert_eq!(rsp, empty);
    let rsp: ImGroupInfoListRsp = call(&c, cid::GROUP_INFO_REQUEST, &info(vec![])).await;
    assert_eq!(rsp, empty);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_members_rules() {
    let srv = TestServer::start().await;
    let store = &srv.env.store;
    let c = srv.client().await;
    let g = create(&c, 1, 1, "g", &[1, 2]).await.group_id.unwrap();
    let t = create(&c, 1, 2, "t", &[1]).await.group_id.unwrap();

    // Q-P10 fix: invalid group → result 1 instead of silence.
    assert_eq!(
        change(&c, 1, true, 999, &[5]).await,
        change_rsp(1, true, 1, 999, &[], &[])
    );
    // Non-creator on a normal group: denied.
    assert_eq!(
        change(&c, 2, true, g, &[5]).await,
        change_rsp(2, true, 1, g, &[], &[])
    );
    // Anyone may add to a temporary group; nobody but the creator may remove.
    assert_eq!(
        change(&c, 77, true, t, &[3]).await,
        change_rsp(77, true, 0, t, &[1, 3], &[3])
    );
    assert_eq!(
        change(&c, 77, false, t, &[3]).await,
        change_rsp(77, false, 1, t, &[], &[])
    );

    // Group unread state: 3 messages in g; a newly added member starts at the total.
    for _ in 0..3 {
        store.counters().group_incr(g, 1).await.unwrap();
    }
    // ADD drops existing members; chg lists only the new ones.
    assert_eq!(
        change(&c, 1, true, g, &[2, 12, 3, 12]).await,
        change_rsp(1, true, 0, g, &[1, 12, 2, 3], &[3, 12])
    );
    let unread_of_3 = store.counters().group_unread(3, &[g]).await.unwrap();
    assert_eq!(unread_of_3, vec![(g, Some(0))]);
    // Q-G04: all already members → result 1.
    assert_eq!(
        change(&c, 1, true, g, &[2, 3]).await,
        change_rsp(1, true, 1, g, &[], &[])
    );
    // Q-G05: DEL with an empty list succeeds.
    assert_eq!(
        change(&c, 0, false, g, &[]).await,
        change_rsp(0, false, 0, g, &[], &[])
    );

    // DEL removes the members' group sessions after the removal.
    let s2 = store.sessions().add(2, g, 2).await.unwrap();
    assert_eq!(
        change(&c, 1, false, g, &[2, 99]).await,
        change_rsp(1, false, 0, g, &[1, 12, 3], &[2, 99])
    );
    assert_eq!(
        store
            .sessions()
            .find(Db::Master, 2, g, 2, false)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .sessions()
            .find(Db::Master, 2, g, 2, true)
            .await
            .unwrap(),
        Some(s2)
    );
    // Versions: create 1, add 12/3 → 2, empty del → 3, del 2 → 4.
    let rows = store.groups().by_ids(&[g]).await.unwrap();
    assert_eq!((rows[0].version, rows[0].user_cnt), (4, 3));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_shield_set_and_get() {
    let srv = TestServer::start().await;
    let c = srv.client().await;
    let g = create(&c, 1, 1, "g", &[1, 2]).await.group_id.unwrap();
    let set = |user: u32, group: u32, status: u32| ImGroupShieldReq {
        user_id: user,
        group_id: group,
        shield_status: status,
        attach_data: attach(),
    };
    let rsp = |user: u32, group: u32, code: u32| ImGroupShieldRsp {
        user_id: user,
        group_id: group,
        result_code: code,
        attach_data: attach(),
    };
    let r: ImGroupShieldRsp = call(&c, cid::GROUP_SHIELD_GROUP_REQUEST, &set(1, g, 1)).await;
    assert_eq!(r, rsp(1, g, 0));
    // Not a member → 1.
    let r: ImGroupShieldRsp = call(&c, cid::GROUP_SHIELD_GROUP_REQUEST, &set(3, g, 1)).await;
    assert_eq!(r, rsp(3, g, 1));
    // Invalid group → 1 (Q-P10 fix: the original sent nothing).
    let r: ImGroupShieldRsp = call(&c, cid::GROUP_SHIELD_GROUP_REQUEST, &set(1, 999, 1)).await;
    assert_eq!(r, rsp(1, 999, 1));

    let get = |group: u32, users: Vec<u32>| ImGroupGetShieldReq {
        group_id: group,
        user_id: users,
        attach_data: attach(),
    };
    let st = |user_id, shield_status| ShieldStatus {
        user_id,
        group_id: g,
        shield_status,
    };
    // Request order, duplicates kept, absent → 0.
    let r: ImGroupGetShieldRsp = call(&c, cid::OTHER_GET_SHIELD_REQ, &get(g, vec![2, 1, 2])).await;
    assert_eq!(
        r,
        ImGroupGetShieldRsp {
            group_id: g,
            shield_status_list: vec![st(2, 0), st(1, 1), st(2, 0)],
            attach_data: attach(),
        }
    );
    let r: ImGroupGetShieldRsp = call(&c, cid::OTHER_GET_SHIELD_REQ, &get(g, vec![])).await;
    assert_eq!(
        r,
        ImGroupGetShieldRsp {
            group_id: g,
            shield_status_list: vec![],
            attach_data: attach(),
        }
    );

    // Invalid group: no reply (kept, Q-P10). Proven on one raw connection: the invalid
    // request (seq 1) is followed by two valid ones (seq 2, 3); the only frames that come
    // back answer seq 2 and 3, and the connection stays open.
    let mut r = Raw::connect(srv.addr).await;
    let valid = get(g, vec![1]).encode_to_vec();
    r.send(&frame(
        7,
        cid::OTHER_GET_SHIELD_REQ,
        1,
        &get(999, vec![1]).encode_to_vec(),
    ))
    .await;
    r.send(&frame(7, cid::OTHER_GET_SHIELD_REQ, 2, &valid))
        .await;
    let first = r.read_frame().await;
    assert_eq!(seq_of(&first), 2, "only the valid request is answered");
    let second = r
        .call(&frame(7, cid::OTHER_GET_SHIELD_REQ, 3, &valid))
        .await;
    for f in [&first, &second] {
        assert_eq!(
            ImGroupGetShieldRsp::decode(body_of(f)).unwrap(),
            ImGroupGetShieldRsp {
                group_id: g,
                shield_status_list: vec![st(1, 1)],
                attach_data: attach(),
            }
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_set_and_get() {
    let srv = TestServer::start().await;
    let store = &srv.env.store;
    let c = srv.client().await;
    let set = |user: u32, token: &str, kind: Option<i32>| ImDeviceTokenReq {
        user_id: user,
        device_token: token.into(),
        client_type: kind,
        attach_data: attach(),
    };
    for (u, tok, kind) in [
        (5, "tok5", Some(0x11)),
        (12, HOSTILE, Some(0x12)),
        (7, "win", None),
    ] {
        let r: ImDeviceTokenRsp = call(&c, cid::LOGIN_REQ_DEVICETOKEN, &set(u, tok, kind)).await;
        assert_eq!(
            r,
            ImDeviceTokenRsp {
                user_id: u,
                attach_data: attach()
            }
        );
    }
    // Badge: 2 single unread + 3 group unread for user 12.
    store.counters().incr_single(12, 5).await.unwrap();
    store.counters().incr_single(12, 6).await.unwrap();
    let g = create(&c, 1, 1, "g", &[12, 1]).await.group_id.unwrap();
    for _ in 0..3 {
        store.counters().group_incr(g, 1).await.unwrap();
    }
    let get = |users: Vec<u32>| ImGetDeviceTokenReq {
        user_id: users,
        attach_data: attach(),
    };
    let r: ImGetDeviceTokenRsp = call(
        &c,
        cid::OTHER_GET_DEVICE_TOKEN_REQ,
        &get(vec![5, 7, 12, 12, 404]),
    )
    .await;
    // Users have push_shield_status 0 (no IMUser rows), so quiet hours filter nothing;
    // keys in lexicographic order ("device_12" < "device_5"); bare tokens (user 7) skipped.
    assert_eq!(
        r,
        ImGetDeviceTokenRsp {
            user_token_info: vec![
                UserTokenInfo {
                    user_id: 12,
                    user_type: 0x12,
                    token: HOSTILE.into(),
                    push_count: 5,
                    push_type: 1
                },
                UserTokenInfo {
                    user_id: 5,
                    user_type: 0x11,
                    token: "tok5".into(),
                    push_count: 0,
                    push_type: 1
                },
            ],
            attach_data: attach(),
        }
    );
    let r: ImGetDeviceTokenRsp = call(&c, cid::OTHER_GET_DEVICE_TOKEN_REQ, &get(vec![])).await;
    assert_eq!(
        r,
        ImGetDeviceTokenRsp {
            user_token_info: vec![],
            attach_data: attach(),
        }
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_files() {
    let srv = TestServer::start().await;
    let c = srv.client().await;
    let add = |from: u32, task: &str| ImFileAddOfflineReq {
        from_user_id: from,
        to_user_id: 2,
        task_id: task.into(),
        file_name: format!("{task}.bin"),
        file_size: 42,
    };
    let info = |from: u32, task: &str| OfflineFileInfo {
        from_user_id: from,
        task_id: task.into(),
        file_name: format!("{task}.bin"),
        file_size: 42,
    };
    let has = ImFileHasOfflineReq {
        user_id: 2,
        attach_data: attach(),
    };
    let has_rsp = |files: Vec<OfflineFileInfo>| ImFileHasOfflineRsp {
        user_id: 2,
        offline_file_list: files,
        ip_addr_list: vec![],
        attach_data: attach(),
    };

    // Nothing yet: an empty list.
    let r: ImFileHasOfflineRsp = call(&c, cid::FILE_HAS_OFFLINE_REQ, &has).await;
    assert_eq!(r, has_rsp(vec![]));

    // 0x050b gets no reply: `call` refuses it; its effect is seen by a following request.
    assert!(matches!(
        c.call(cid::FILE_ADD_OFFLINE_REQ, &add(1, "t1")).await,
        Err(dbproxy_protocol::Error::NoResponse(_))
    ));
    c.send(cid::FILE_ADD_OFFLINE_REQ, &add(1, "t1"))
        .await
        .unwrap();
    eventually("first offline file stored", || async {
        let r: ImFileHasOfflineRsp = call(&c, cid::FILE_HAS_OFFLINE_REQ, &has).await;
        r == has_rsp(vec![info(1, "t1")])
    })
    .await;
    // Ordered by created ascending; both may share a second, so the second add is awaited
    // as a whole list containing both.
    c.send(cid::FILE_ADD_OFFLINE_REQ, &add(3, HOSTILE))
        .await
        .unwrap();
    eventually("second offline file stored", || async {
        let r: ImFileHasOfflineRsp = call(&c, cid::FILE_HAS_OFFLINE_REQ, &has).await;
        r == has_rsp(vec![info(1, "t1"), info(3, HOSTILE)])
            || r == has_rsp(vec![info(3, HOSTILE), info(1, "t1")])
    })
    .await;

    let del = |from: u32, task: &str| ImFileDelOfflineReq {
        from_user_id: from,
        to_user_id: 2,
        task_id: task.into(),
    };
    // An injection attempt as task id deletes nothing (Q-S03 fix); sent first, then the
    // real delete; once the real one is visible the list must still hold t1.
    c.send(cid::FILE_DEL_OFFLINE_REQ, &del(1, "' OR 1=1 --"))
        .await
        .unwrap();
    c.send(cid::FILE_DEL_OFFLINE_REQ, &del(3, HOSTILE))
        .await
        .unwrap();
    eventually("hostile-named file deleted", || async {
        let r: ImFileHasOfflineRsp = call(&c, cid::FILE_HAS_OFFLINE_REQ, &has).await;
        assert!(
            r.offline_file_list.contains(&info(1, "t1")),
            "t1 must survive: {r:?}"
        );
        r == has_rsp(vec![info(1, "t1")])
    })
    .await;
    // The connection that carried the fire-and-forget commands still answers.
    let r: ImFileHasOfflineRsp = call(&c, cid::FILE_HAS_OFFLINE_REQ, &has).await;
    assert_eq!(r, has_rsp(vec![info(1, "t1")]));
    srv.stop().await;
}

/// A device token longer than the documented limit (4096 bytes) is answered as usual (the
/// reply has no result code) but not stored; one at the limit is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_device_tokens_are_not_stored() {
    let srv = TestServer::start().await;
    let c = srv.client().await;
    for (user, len, stored) in [(21, 4096, true), (22, 4097, false), (23, 1 << 20, false)] {
        let token = "t".repeat(len);
        let r: ImDeviceTokenRsp = call(
            &c,
            cid::LOGIN_REQ_DEVICETOKEN,
            &ImDeviceTokenReq {
                user_id: user,
                device_token: token.clone(),
                client_type: Some(0x11),
                attach_data: attach(),
            },
        )
        .await;
        assert_eq!(r.user_id, user);
        let kept = srv.env.store.tokens().raw(&user.to_string()).await.unwrap();
        assert_eq!(kept.is_some(), stored, "{len} bytes");
        if stored {
            assert_eq!(kept.unwrap(), format!("ios:{token}"));
        }
    }
    srv.stop().await;
}
