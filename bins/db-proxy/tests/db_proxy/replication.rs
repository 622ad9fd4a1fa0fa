//! The original's master/slave split on real MariaDB replication: a primary and an
//! asynchronous replica (two private mariadbd, binlog + GTID), db-proxy's master pool on the
//! primary and its slave pool on the replica. A lagging replica (SQL thread stopped) never
//! causes duplicates, lost messages or refused writes, its reads are stale and catch up; a
//! replica that goes down (or is down at start) is answered for by the primary, and reads go
//! back to it once it is back.

use std::time::Duration;

use bytes::Bytes;
use dbproxy_action::ActionSettings;
use dbproxy_model::Store;
use dbproxy_protocol::pb::im::base_define::SessionType;
use dbproxy_protocol::pb::im::group::{
    ImGroupChangeMemberReq, ImGroupChangeMemberRsp, ImGroupCreateReq, ImGroupCreateRsp,
};
use dbproxy_protocol::pb::im::message::{ImGetMsgListReq, ImGetMsgListRsp, ImMsgData};
use dbproxy_protocol::{cid, Client};
use dbproxy_testkit::{PrivateMariadb, TestEnv};
use futures::future::join_all;

use crate::common::*;

async fn send(c: &Client, from: u32, to: u32) -> u32 {
    let req = single_text(from, to, 1_700_000_000, Bytes::from_static(b"replicated"));
    let rsp: ImMsgData = call(c, cid::MSG_DATA, &req).await;
    rsp.msg_id
}

async fn list(c: &Client, user: u32, peer: u32) -> usize {
    let rsp: ImGetMsgListRsp = call(
        c,
        cid::MSG_LIST_REQUEST,
        &ImGetMsgListReq {
            user_id: user,
            session_type: SessionType::Single as i32,
            session_id: peer,
            msg_id_begin: 0,
            msg_cnt: 50,
            attach_data: attach(),
        },
    )
    .await;
    rsp.msg_list.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_and_missing_replica() {
    let (primary, mut replica) = PrivateMariadb::replication_pair();
    let env = TestEnv::on_mariadb(&primary, |_| {}).await;
    let mut users = Vec::new();
    for i in 0..16 {
        users.push(insert_user(&env, &format!("repl{i}")).await);
    }
    // The test database, its schema and users reach the replica; then the slave pool
    // reads there.
    replica.wait_caught_up(&primary);
    let mut config = env.config.clone();
    config.slave.port = replica.port;
    let store = Store::connect(&config)
        .await
        .expect("store on primary + replica");
    let srv = TestServer::serve(env, store, ActionSettings::default()).await;
    let c = srv.client().await;

    // The replica stops applying: everything below is written to the primary only.
    replica.sql("STOP SLAVE SQL_THREAD");
    let pairs: Vec<(u32, u32)> = (0..5).map(|k| (users[2 * k], users[2 * k + 1])).collect();
    let mut sends = Vec::new();
    for &(a, b) in &pairs {
        for _ in 0..3 {
            sends.push(send(&c, a, b));
            sends.push(send(&c, b, a));
        }
    }
    let ids = join_all(sends).await;
    assert!(ids.iter().all(|&id| id != 0), "every send stored: {ids:?}");
    let env = &srv.env;
    let count = async |sql: &str| env.query_i64s(sql).await[0];
    assert_eq!(
        count("SELECT COUNT(DISTINCT smallId, bigId) AS n FROM IMRelationShip").await,
        5
    );
    assert_eq!(count("SELECT COUNT(*) AS n FROM IMRelationShip").await, 5);
    assert_eq!(
        count("SELECT COUNT(*) AS n FROM IMRecentSession WHERE type = 1").await,
        10,
        "one session per side although the replica knows none of them"
    );
    let mut per_relation: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for (rel, msg_id, _) in env.single_messages().await {
        per_relation.entry(rel).or_default().push(msg_id);
    }
    for (rel, mut ids) in per_relation {
        ids.sort_unstable();
        assert_eq!(ids, (1..=6).collect::<Vec<u32>>(), "relation {rel}");
    }
    // A group created a moment ago accepts members at once (its creator is read on the
    // primary), although the replica has not seen the group.
    let creator = users[10];
    let created: ImGroupCreateRsp = call(
        &c,
        cid::GROUP_CREATE_REQUEST,
        &ImGroupCreateReq {
            user_id: creator,
            group_type: 1,
            group_name: Bytes::from_static(b"lagging"),
            group_avatar: "".into(),
            member_id_list: vec![creator, users[11]],
            attach_data: attach(),
        },
    )
    .await;
    let group = created.group_id.expect("group");
    let changed: ImGroupChangeMemberRsp = call(
        &c,
        cid::GROUP_CHANGE_MEMBER_REQUEST,
        &ImGroupChangeMemberReq {
            user_id: creator,
            change_type: 1,
            group_id: group,
            member_id_list: vec![users[12]],
            attach_data: attach(),
        },
    )
    .await;
    assert_eq!(changed.result_code, 0);
    // Plain reads are stale while the replica lags: the history is not there yet.
    let (a, b) = pairs[0];
    assert_eq!(list(&c, a, b).await, 0, "read on the lagging replica");

    // It catches up, and so do the reads.
    replica.sql("START SLAVE SQL_THREAD");
    replica.wait_caught_up(&primary);
    assert_eq!(list(&c, a, b).await, 6);

    // The replica goes away: after the breaker opens, the primary answers the reads.
    replica.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut failed = 0;
    loop {
        if list(&c, a, b).await == 6 {
            break;
        }
        failed += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "reads did not fail over"
        );
    }
    assert!(failed <= 5, "{failed} reads failed before the fail-over");
    for _ in 0..20 {
        assert_eq!(list(&c, a, b).await, 6, "answered by the primary");
    }
    // Back again (replication resumes by itself); once the probe finds it, reads go to the
    // replica again: with its SQL thread stopped it shows a seventh message only after it
    // applies it.
    replica.restart();
    replica.wait_caught_up(&primary);
    replica.sql("STOP SLAVE SQL_THREAD");
    assert_ne!(send(&c, a, b).await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while list(&c, a, b).await != 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "reads never went back to the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica.sql("START SLAVE SQL_THREAD");
    replica.wait_caught_up(&primary);
    assert_eq!(list(&c, a, b).await, 7);

    // A store started while the replica is down starts all the same; the master answers
    // its plain reads.
    replica.kill9();
    let late = Store::connect(&config)
        .await
        .expect("starts without its replica");
    let found = late.users().by_ids(&[a]).await.expect("read on the master");
    assert_eq!(found.len(), 1);
    drop(late);
    drop(c);
    srv.stop().await;
}
