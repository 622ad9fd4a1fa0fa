//! Group, shield, device-token, offline-file handlers and the group sync, driven through
//! `Actions::handle` with a real MariaDB + Redis (whole decoded responses asserted).

use std::time::Duration;

use bytes::Bytes;
use dbproxy_action::{ActionSettings, Actions};
use dbproxy_model::{session, unread, Db};
use dbproxy_protocol::commands::cid;
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
use dbproxy_testkit::TestEnv;
use prost::Message;
use tokio_util::sync::CancellationToken;

const ATTACH: &[u8] = b"\x00\x00\x00\x01\x00\x00\x00\x07\x00\x00\x00\x00";
const HOSTILE: &str = "' OR 1=1 -- \"q\" \\back\\ 😀🐉";

fn attach() -> Option<Bytes> {
    Some(Bytes::from_static(ATTACH))
}

async fn call<Rsp: Message + Default>(a: &Actions, id: u16, req: impl Message) -> Option<Rsp> {
    a.handle(id, Bytes::from(req.encode_to_vec()))
        .await
        .map(|b| Rsp::decode(b).unwrap())
}

fn actions(env: &TestEnv) -> Actions {
    Actions::new(env.store.clone(), ActionSettings::default())
}

async fn create(
    a: &Actions,
    creator: u32,
    kind: i32,
    name: &str,
    members: &[u32],
) -> ImGroupCreateRsp {
    call(
        a,
        cid::GROUP_CREATE_REQUEST,
        ImGroupCreateReq {
            user_id: creator,
            group_type: kind,
            group_name: name.into(),
            group_avatar: "av".into(),
            member_id_list: members.to_vec(),
            attach_data: attach(),
        },
    )
    .await
    .unwrap()
}

async fn change(
    a: &Actions,
    user: u32,
    add: bool,
    g: u32,
    members: &[u32],
) -> Option<ImGroupChangeMemberRsp> {
    call(
        a,
        cid::GROUP_CHANGE_MEMBER_REQUEST,
        ImGroupChangeMemberReq {
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
    let env = TestEnv::new().await;
    let a = actions(&env);

    // Failures: empty name / empty members → result 1, list still echoed, no group id.
    let r = create(&a, 1, 1, "", &[3, 2, 3]).await;
    assert_eq!(
        r,
        ImGroupCreateRsp {
            user_id: 1,
            result_code: 1,
            group_id: None,
            group_name: String::new(),
            user_id_list: vec![2, 3],
            attach_data: attach(),
        }
    );
    assert_eq!(create(&a, 1, 1, "x", &[]).await.result_code, 1);

    let r = create(&a, 1, 1, HOSTILE, &[10, 9, 1, 9]).await;
    let g = r.group_id.unwrap();
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
    let t = create(&a, 1, 2, "tmp", &[1]).await.group_id.unwrap();

    let list: ImNormalGroupListRsp = call(
        &a,
        cid::GROUP_NORMAL_LIST_REQUEST,
        ImNormalGroupListReq {
            user_id: 1,
            attach_data: None,
        },
    )
    .await
    .unwrap();
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
    let rsp: ImGroupInfoListRsp = call(
        &a,
        cid::GROUP_INFO_REQUEST,
        info(vec![(g, 0), (t, 1), (999, 0)]),
    )
    .await
    .unwrap();
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
                group_member_list: vec![1, 10, 9],
            }],
            attach_data: attach(),
        }
    );
    // Duplicates: the last requested version wins.
    let rsp: ImGroupInfoListRsp = call(
        &a,
        cid::GROUP_INFO_REQUEST,
        info(vec![(g, 0), (g, 1), (t, 0), (t, 5)]),
    )
    .await
    .unwrap();
    assert!(rsp.group_info_list.is_empty());
    let rsp: ImGroupInfoListRsp = call(&a, cid::GROUP_INFO_REQUEST, info(vec![]))
        .await
        .unwrap();
    assert!(rsp.group_info_list.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_members_rules() {
    let env = TestEnv::new().await;
    let a = actions(&env);
    let g = create(&a, 1, 1, "g", &[1, 2]).await.group_id.unwrap();
    let t = create(&a, 1, 2, "t", &[1]).await.group_id.unwrap();

    // Q-P10 fix: invalid group → result 1 instead of silence.
    assert_eq!(
        change(&a, 1, true, 999, &[5]).await,
        Some(change_rsp(1, true, 1, 999, &[], &[]))
    );
    // Non-creator on a normal group: denied.
    assert_eq!(
        change(&a, 2, true, g, &[5]).await,
        Some(change_rsp(2, true, 1, g, &[], &[]))
    );
    // Anyone may add to a temporary group; nobody but the creator may remove.
    assert_eq!(
        change(&a, 77, true, t, &[3]).await,
        Some(change_rsp(77, true, 0, t, &[1, 3], &[3]))
    );
    assert_eq!(change(&a, 77, false, t, &[3]).await.unwrap().result_code, 1);

    // Group unread state: 3 messages in g; a newly added member starts at the total.
    for _ in 0..3 {
        unread::group_incr(&env.store, g, 1).await.unwrap();
    }
    // ADD drops existing members; chg lists only the new ones.
    assert_eq!(
        change(&a, 1, true, g, &[2, 12, 3, 12]).await,
        Some(change_rsp(1, true, 0, g, &[1, 12, 2, 3], &[3, 12]))
    );
    let unread_of_3 = unread::group_unread(&env.store, 3, &[g]).await.unwrap();
    assert_eq!(unread_of_3, vec![(g, Some(0))]);
    // Q-G04: all already members → result 1.
    assert_eq!(
        change(&a, 1, true, g, &[2, 3]).await.unwrap().result_code,
        1
    );
    // Q-G05: DEL with an empty list succeeds.
    assert_eq!(
        change(&a, 0, false, g, &[]).await,
        Some(change_rsp(0, false, 0, g, &[], &[]))
    );

    // DEL removes the members' group sessions after the removal.
    let s2 = session::add(&env.store, 2, g, 2).await.unwrap();
    assert_eq!(
        change(&a, 1, false, g, &[2, 99]).await,
        Some(change_rsp(1, false, 0, g, &[1, 12, 3], &[2, 99]))
    );
    assert_eq!(
        session::find(&env.store, Db::Master, 2, g, 2, false)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        session::find(&env.store, Db::Master, 2, g, 2, true)
            .await
            .unwrap(),
        Some(s2)
    );
    // Versions: create 1, add 12/3 → 2, empty del → 3, del 2 → 4.
    let rows = env.store.groups().by_ids(&[g]).await.unwrap();
    assert_eq!((rows[0].version, rows[0].user_cnt), (4, 3));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_shield_set_and_get() {
    let env = TestEnv::new().await;
    let a = actions(&env);
    let g = create(&a, 1, 1, "g", &[1, 2]).await.group_id.unwrap();
    let set = |user: u32, group: u32, status: u32| ImGroupShieldReq {
        user_id: user,
        group_id: group,
        shield_status: status,
        attach_data: attach(),
    };
    let ok = |user: u32, group: u32, code: u32| ImGroupShieldRsp {
        user_id: user,
        group_id: group,
        result_code: code,
        attach_data: attach(),
    };
    let r: Option<ImGroupShieldRsp> = call(&a, cid::GROUP_SHIELD_GROUP_REQUEST, set(1, g, 1)).await;
    assert_eq!(r, Some(ok(1, g, 0)));
    let r: Option<ImGroupShieldRsp> = call(&a, cid::GROUP_SHIELD_GROUP_REQUEST, set(3, g, 1)).await;
    assert_eq!(r, Some(ok(3, g, 1)));
    let r: Option<ImGroupShieldRsp> =
        call(&a, cid::GROUP_SHIELD_GROUP_REQUEST, set(1, 999, 1)).await;
    assert_eq!(r, Some(ok(1, 999, 1)));

    let get = |group: u32, users: Vec<u32>| ImGroupGetShieldReq {
        group_id: group,
        user_id: users,
        attach_data: attach(),
    };
    let r: Option<ImGroupGetShieldRsp> =
        call(&a, cid::OTHER_GET_SHIELD_REQ, get(g, vec![2, 1, 2])).await;
    let st = |user_id, shield_status| ShieldStatus {
        user_id,
        group_id: g,
        shield_status,
    };
    assert_eq!(
        r,
        Some(ImGroupGetShieldRsp {
            group_id: g,
            shield_status_list: vec![st(2, 0), st(1, 1), st(2, 0)],
            attach_data: attach(),
        })
    );
    let r: Option<ImGroupGetShieldRsp> = call(&a, cid::OTHER_GET_SHIELD_REQ, get(g, vec![])).await;
    assert_eq!(r.unwrap().shield_status_list, vec![]);
    // Invalid group: no reply (kept).
    let r: Option<ImGroupGetShieldRsp> =
        call(&a, cid::OTHER_GET_SHIELD_REQ, get(999, vec![1])).await;
    assert_eq!(r, None);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_set_and_get() {
    let env = TestEnv::new().await;
    let a = actions(&env);
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
        let r: Option<ImDeviceTokenRsp> =
            call(&a, cid::LOGIN_REQ_DEVICETOKEN, set(u, tok, kind)).await;
        assert_eq!(
            r,
            Some(ImDeviceTokenRsp {
                user_id: u,
                attach_data: attach()
            })
        );
    }
    // Badge: 2 single unread + 3 group unread for user 12.
    unread::incr_single(&env.store, 12, 5).await.unwrap();
    unread::incr_single(&env.store, 12, 6).await.unwrap();
    let g = create(&a, 1, 1, "g", &[12, 1]).await.group_id.unwrap();
    for _ in 0..3 {
        unread::group_incr(&env.store, g, 1).await.unwrap();
    }
    let get = |users: Vec<u32>| ImGetDeviceTokenReq {
        user_id: users,
        attach_data: attach(),
    };
    let r: ImGetDeviceTokenRsp = call(
        &a,
        cid::OTHER_GET_DEVICE_TOKEN_REQ,
        get(vec![5, 7, 12, 12, 404]),
    )
    .await
    .unwrap();
    // Users have push_shield_status 0 (no IMUser rows), so the quiet hours filter nothing.
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
    let r: ImGetDeviceTokenRsp = call(&a, cid::OTHER_GET_DEVICE_TOKEN_REQ, get(vec![]))
        .await
        .unwrap();
    assert!(r.user_token_info.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_files() {
    let env = TestEnv::new().await;
    let a = actions(&env);
    let add = |from: u32, task: &str| ImFileAddOfflineReq {
        from_user_id: from,
        to_user_id: 2,
        task_id: task.into(),
        file_name: format!("{task}.bin"),
        file_size: 42,
    };
    let none: Option<ImFileHasOfflineRsp> = call(&a, cid::FILE_ADD_OFFLINE_REQ, add(1, "t1")).await;
    assert_eq!(none, None);
    let none: Option<ImFileHasOfflineRsp> =
        call(&a, cid::FILE_ADD_OFFLINE_REQ, add(3, HOSTILE)).await;
    assert_eq!(none, None);
    let has = ImFileHasOfflineReq {
        user_id: 2,
        attach_data: attach(),
    };
    let r: ImFileHasOfflineRsp = call(&a, cid::FILE_HAS_OFFLINE_REQ, has.clone())
        .await
        .unwrap();
    let info = |from: u32, task: &str| OfflineFileInfo {
        from_user_id: from,
        task_id: task.into(),
        file_name: format!("{task}.bin"),
        file_size: 42,
    };
    assert_eq!(r.offline_file_list.len(), 2);
    assert!(r.offline_file_list.contains(&info(1, "t1")));
    assert!(r.offline_file_list.contains(&info(3, HOSTILE)));
    assert_eq!(
        (r.user_id, r.ip_addr_list.len(), r.attach_data),
        (2, 0, attach())
    );

    let del = |from: u32, task: &str| ImFileDelOfflineReq {
        from_user_id: from,
        to_user_id: 2,
        task_id: task.into(),
    };
    let none: Option<ImFileHasOfflineRsp> =
        call(&a, cid::FILE_DEL_OFFLINE_REQ, del(1, "' OR 1=1 --")).await;
    assert_eq!(none, None);
    let none: Option<ImFileHasOfflineRsp> =
        call(&a, cid::FILE_DEL_OFFLINE_REQ, del(3, HOSTILE)).await;
    assert_eq!(none, None);
    let r: ImFileHasOfflineRsp = call(&a, cid::FILE_HAS_OFFLINE_REQ, has).await.unwrap();
    assert_eq!(r.offline_file_list, vec![info(1, "t1")]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_sync_bumps_and_creates_sessions() {
    let env = TestEnv::new().await;
    let settings = ActionSettings {
        sync_interval: Duration::from_millis(100),
        ..ActionSettings::default()
    };
    let a = Actions::new(env.store.clone(), settings);
    let store = &env.store;
    let g = create(&a, 1, 1, "g", &[1, 2, 3]).await.group_id.unwrap();
    let old = create(&a, 1, 1, "old", &[1]).await.group_id.unwrap();
    // Member 2 has a deleted session; member 3 has none; member 1 a visible one.
    let s1 = session::add(store, 1, g, 2).await.unwrap();
    let s2 = session::add(store, 2, g, 2).await.unwrap();
    session::remove(store, s2).await.unwrap();

    // Resume mark (Q-Y03): groups chatted long before it are not processed.
    store
        .sync_state()
        .set_last_update_group(10_000)
        .await
        .unwrap();
    store.groups().set_last_chated(g, 10_000 - 1).await.unwrap(); // inside the overlap
    store.groups().set_last_chated(old, 5_000).await.unwrap();

    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let a = a.clone();
        let shutdown = shutdown.clone();
        async move { a.run_group_sync(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();

    let recent1 = session::recent(store, 1, 0).await.unwrap();
    assert_eq!(recent1.iter().find(|s| s.id == s1).unwrap().updated, 9_999);
    assert!(recent1.iter().all(|s| s.peer_id != old));
    // Deleted session stays deleted (Q-Y04), but its time is bumped.
    assert_eq!(
        session::find(store, Db::Master, 2, g, 2, false)
            .await
            .unwrap(),
        None
    );
    // Missing session created, visible.
    assert!(session::find(store, Db::Master, 3, g, 2, false)
        .await
        .unwrap()
        .is_some());
    // Mark advanced to the pass time.
    let mark = store
        .sync_state()
        .last_update_group()
        .await
        .unwrap()
        .unwrap();
    assert!(mark > 10_000);
    env.cleanup().await;
}
