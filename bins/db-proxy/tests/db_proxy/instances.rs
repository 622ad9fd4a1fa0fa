//! Several db-proxy processes (real binaries) on one database and one Redis, as a scaled-out
//! deployment runs them behind its message servers: a concurrent workload spread across the
//! instances leaves the invariants of the single-instance concurrency tests, the login
//! lockout counts across instances, and one instance at a time runs the group-session sync.

use std::time::Duration;

use bytes::Bytes;
use dbproxy_protocol::pb::im::base_define::SessionType;
use dbproxy_protocol::pb::im::group::{
    ImGroupChangeMemberReq, ImGroupChangeMemberRsp, ImGroupCreateReq, ImGroupCreateRsp,
};
use dbproxy_protocol::pb::im::message::{ImMsgData, ImMsgDataReadAck};
use dbproxy_protocol::pb::im::server::{ImValidateReq, ImValidateRsp};
use dbproxy_protocol::{cid, Client};
use dbproxy_testkit::TestEnv;
use futures::future::join_all;

use crate::common::binary::Binary;
use crate::common::*;

const INSTANCES: usize = 3;

struct Deployment {
    env: TestEnv,
    bins: Vec<Binary>,
    clients: Vec<Client>,
}

impl Deployment {
    async fn start() -> Deployment {
        let env = TestEnv::new().await;
        let bins: Vec<Binary> = (0..INSTANCES).map(|_| Binary::start(&env, 1, "")).collect();
        let mut clients = Vec::new();
        for b in &bins {
            clients.push(Client::connect(b.addr).await.expect("connect"));
        }
        Deployment { env, bins, clients }
    }

    /// The client of instance `i % INSTANCES`.
    fn via(&self, i: usize) -> &Client {
        &self.clients[i % INSTANCES]
    }

    async fn count(&self, sql: &str) -> i64 {
        self.env.query_i64s(sql).await[0]
    }
}

async fn send(c: &Client, from: u32, to: u32, text: &str) -> u32 {
    let req = single_text(from, to, 1_700_000_000, Bytes::from(text.to_owned()));
    let rsp: ImMsgData = call(c, cid::MSG_DATA, &req).await;
    rsp.msg_id
}

async fn send_group(c: &Client, from: u32, group: u32, n: u32) -> u32 {
    let req = ImMsgData {
        from_user_id: from,
        to_session_id: group,
        msg_id: 0,
        create_time: 1_700_000_000,
        msg_type: dbproxy_protocol::pb::im::base_define::MsgType::GroupText as i32,
        msg_data: Bytes::from(format!("group {n}")),
        attach_data: None,
    };
    let rsp: ImMsgData = call(c, cid::MSG_DATA, &req).await;
    rsp.msg_id
}

async fn create_group(c: &Client, creator: u32, members: &[u32]) -> u32 {
    let rsp: ImGroupCreateRsp = call(
        c,
        cid::GROUP_CREATE_REQUEST,
        &ImGroupCreateReq {
            user_id: creator,
            group_type: 1,
            group_name: Bytes::from_static(b"shared"),
            group_avatar: "".into(),
            member_id_list: members.to_vec(),
            attach_data: attach(),
        },
    )
    .await;
    assert_eq!(rsp.result_code, 0);
    rsp.group_id.expect("group id")
}

async fn change(c: &Client, creator: u32, add: bool, group: u32, members: &[u32]) -> u32 {
    let rsp: ImGroupChangeMemberRsp = call(
        c,
        cid::GROUP_CHANGE_MEMBER_REQUEST,
        &ImGroupChangeMemberReq {
            user_id: creator,
            change_type: if add { 1 } else { 2 },
            group_id: group,
            member_id_list: members.to_vec(),
            attach_data: attach(),
        },
    )
    .await;
    rsp.result_code
}

async fn login(c: &Client, name: &str, password: &str) -> u32 {
    let rsp: ImValidateRsp = call(
        c,
        cid::OTHER_VALIDATE_REQ,
        &ImValidateReq {
            user_name: name.into(),
            password: password.into(),
            attach_data: attach(),
        },
    )
    .await;
    rsp.result_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_keep_the_single_instance_invariants() {
    let deployment = Deployment::start().await;
    let d = &deployment;
    let env = &d.env;
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(insert_user(env, &format!("inst{i}")).await);
    }

    // First messages of ten new pairs, from both sides at once, through every instance.
    let pairs: Vec<(u32, u32)> = (0..10).map(|k| (users[2 * k], users[2 * k + 1])).collect();
    let mut sends = Vec::new();
    for (k, &(a, b)) in pairs.iter().enumerate() {
        for j in 0..3 {
            sends.push(send(d.via(k + j), a, b, "a to b"));
            sends.push(send(d.via(k + j + 1), b, a, "b to a"));
        }
    }
    let ids = join_all(sends).await;
    assert!(ids.iter().all(|&id| id != 0), "every send stored: {ids:?}");
    assert_eq!(
        d.count("SELECT COUNT(*) AS n FROM IMRelationShip").await,
        10
    );
    assert_eq!(
        d.count("SELECT COUNT(DISTINCT smallId, bigId) AS n FROM IMRelationShip")
            .await,
        10,
        "one relation per pair"
    );
    assert_eq!(
        d.count("SELECT COUNT(*) AS n FROM IMRecentSession WHERE type = 1")
            .await,
        20
    );
    assert_eq!(
        d.count("SELECT COUNT(DISTINCT userId, peerId) AS n FROM IMRecentSession WHERE type = 1")
            .await,
        20,
        "one session row per side"
    );
    let mut per_relation: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for (rel, msg_id, _) in env.single_messages().await {
        per_relation.entry(rel).or_default().push(msg_id);
    }
    assert_eq!(per_relation.len(), 10);
    for (rel, mut ids) in per_relation {
        ids.sort_unstable();
        assert_eq!(
            ids,
            (1..=6).collect::<Vec<u32>>(),
            "relation {rel}: msgIds 1..6"
        );
    }
    for &(a, b) in &pairs {
        assert_eq!(
            env.store.counters().single_counts(b).await.unwrap(),
            vec![(a, 3)]
        );
        assert_eq!(
            env.store.counters().single_counts(a).await.unwrap(),
            vec![(b, 3)]
        );
    }

    // Three groups created at once through the three instances.
    let creator = users[20];
    let senders: Vec<u32> = users[20..30].to_vec();
    let readers: Vec<u32> = users[30..35].to_vec();
    let mut members = senders.clone();
    members.extend(&readers);
    let created = join_all((0..3).map(|i| create_group(d.via(i), creator, &members))).await;
    let mut distinct = created.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "distinct group ids: {created:?}");
    for &g in &created {
        let rows = env.store.groups().member_rows(g).await.unwrap();
        assert_eq!(
            rows.len(),
            members.len(),
            "group {g}: one member row per member"
        );
    }

    // 30 group messages from ten members through all instances, with read-acks of other
    // members in between.
    let g = created[0];
    let sends = senders
        .iter()
        .enumerate()
        .flat_map(|(i, &s)| (0..3).map(move |n| send_group(d.via(i + n), s, g, n as u32)));
    let acks = readers.iter().take(2).enumerate().map(|(i, &r)| {
        let ack = ImMsgDataReadAck {
            user_id: r,
            session_id: g,
            msg_id: 1,
            session_type: SessionType::Group as i32,
        };
        async move { d.via(i).send(cid::MSG_READ_ACK, &ack).await.unwrap() }
    });
    let (ids, _) = tokio::join!(join_all(sends), join_all(acks));
    assert!(
        ids.iter().all(|&id| id != 0),
        "every group send stored: {ids:?}"
    );
    let group_ids = env
        .query_i64s(&format!(
            "SELECT msgId AS n FROM {} WHERE groupId = {g} ORDER BY msgId",
            dbproxy_model::shard::group_message_table(g)
        ))
        .await;
    assert_eq!(
        group_ids,
        (1..=30).collect::<Vec<i64>>(),
        "group msgIds 1..30"
    );
    // Members who neither sent nor read have exactly the 30 unread.
    for &r in &readers[2..] {
        let unread = env.store.counters().group_unread(r, &[g]).await.unwrap();
        assert_eq!(unread, vec![(g, Some(30))], "reader {r}");
    }
    // A read-ack through any instance brings one to 0.
    let ack = ImMsgDataReadAck {
        user_id: readers[4],
        session_id: g,
        msg_id: 30,
        session_type: SessionType::Group as i32,
    };
    d.via(2).send(cid::MSG_READ_ACK, &ack).await.unwrap();
    eventually("read-ack applied", || async {
        env.store
            .counters()
            .group_unread(readers[4], &[g])
            .await
            .unwrap()
            == vec![(g, Some(0))]
    })
    .await;

    // The same add through three instances at once: one changes the group, the others find
    // nothing left to add; one member row each, the version bumped once.
    let h = created[1];
    let newcomers = [users[36], users[37]];
    let codes = join_all((0..3).map(|i| change(d.via(i), creator, true, h, &newcomers))).await;
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 1], "one add succeeds: {codes:?}");
    let rows = env.store.groups().member_rows(h).await.unwrap();
    for u in newcomers {
        assert_eq!(
            rows.iter().filter(|r| r.0 == u).count(),
            1,
            "user {u}: one row"
        );
    }
    let version = |g: u32| {
        let store = env.store.clone();
        async move { store.groups().by_ids(&[g]).await.unwrap()[0].version }
    };
    assert_eq!(version(h).await, 2);
    // The same removal through three instances: the version moves once more.
    let leaving = [users[36]];
    let codes = join_all((0..3).map(|i| change(d.via(i), creator, false, h, &leaving))).await;
    assert_eq!(codes, vec![0, 0, 0]);
    assert_eq!(version(h).await, 3);
    assert!(!env
        .store
        .groups()
        .members(h)
        .await
        .unwrap()
        .contains(&users[36]));

    // Nothing the doctor would repair.
    let findings = env.store.doctor().check().await.unwrap();
    assert!(findings.iter().all(|f| f.count == 0), "{findings:?}");
    let Deployment { env, bins, clients } = deployment;
    drop(clients);
    drop(bins);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_counts_across_instances_and_one_instance_syncs() {
    let mut d = Deployment::start().await;
    insert_user(&d.env, "victim").await;

    // Eleven failures, spread over the three instances, lock the name on every one: at
    // once on the instance that saw the eleventh, on the others once their copy of the
    // locked names is refreshed (at most a second later).
    for i in 0..11 {
        assert_eq!(login(d.via(i), "victim", "wrong").await, 1, "failure {i}");
    }
    assert_eq!(login(d.via(10), "victim", CLIENT_MD5_123456).await, 6);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for i in 0..INSTANCES {
        assert_eq!(
            login(d.via(i), "victim", CLIENT_MD5_123456).await,
            6,
            "instance {i} knows the lockout"
        );
    }

    // One instance holds the group-sync lease and runs the passes.
    let taken = |bins: &[Binary]| {
        bins.iter()
            .map(|b| b.log_text().matches("group sync: lease taken").count())
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let leader = loop {
        let counts = taken(&d.bins);
        if counts.iter().sum::<usize>() > 0 {
            assert_eq!(counts.iter().sum::<usize>(), 1, "one leader: {counts:?}");
            break counts.iter().position(|&n| n == 1).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no instance took the lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // It gives the lease up when it stops; another instance takes it at its next tick.
    d.bins[leader].signal("TERM");
    assert!(d.bins[leader].wait_exit(Duration::from_secs(20)).is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    loop {
        let counts = taken(&d.bins);
        let others: usize = counts
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != leader)
            .map(|(_, n)| n)
            .sum();
        if others == 1 {
            break;
        }
        assert!(others == 0, "one new leader: {counts:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "nobody took over: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(d.clients);
    drop(d.bins);
    d.env.cleanup().await;
}
