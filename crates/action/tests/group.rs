//! The group-session sync task (`run_group_sync`) driven directly beside `Actions`, with a
//! real MariaDB + Redis. The group, shield, device-token and offline-file handlers are
//! tested end to end over TCP in bins/db-proxy/tests/db_proxy/e2e_group_token_file.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use dbproxy_action::{ActionSettings, Actions};
use dbproxy_model::Db;
use dbproxy_protocol::commands::cid;
use dbproxy_protocol::pb::im::group::{ImGroupCreateReq, ImGroupCreateRsp};
use dbproxy_testkit::TestEnv;
use prost::Message;
use tokio_util::sync::CancellationToken;

const ATTACH: &[u8] = b"\x00\x00\x00\x01\x00\x00\x00\x07\x00\x00\x00\x00";

fn attach() -> Option<Bytes> {
    Some(Bytes::from_static(ATTACH))
}

async fn call<Rsp: Message + Default>(a: &Actions, id: u16, req: impl Message) -> Option<Rsp> {
    a.handle(id, Bytes::from(req.encode_to_vec()))
        .await
        .map(|b| Rsp::decode(b).unwrap())
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
            group_name: Bytes::copy_from_slice(name.as_bytes()),
            group_avatar: "av".into(),
            member_id_list: members.to_vec(),
            attach_data: attach(),
        },
    )
    .await
    .unwrap()
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
    let s1 = store.sessions().add(1, g, 2).await.unwrap();
    let s2 = store.sessions().add(2, g, 2).await.unwrap();
    store.sessions().remove(s2).await.unwrap();

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
    // Wait (polling, not a fixed sleep) until a pass has advanced the resume mark.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mark = store.sync_state().last_update_group().await.unwrap();
        if mark.is_some_and(|m| m > 10_000) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no sync pass ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();

    let recent1 = store.sessions().recent(1, 0).await.unwrap();
    assert_eq!(recent1.iter().find(|s| s.id == s1).unwrap().updated, 9_999);
    assert!(recent1.iter().all(|s| s.peer_id != old));
    // Deleted session stays deleted (Q-Y04), but its time is bumped.
    assert_eq!(
        store
            .sessions()
            .find(Db::Master, 2, g, 2, false)
            .await
            .unwrap(),
        None
    );
    // Missing session created, visible.
    assert!(store
        .sessions()
        .find(Db::Master, 3, g, 2, false)
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
