//! Engines killed (-9) and frozen (SIGSTOP) under send load, then back: every acknowledged
//! message is stored exactly once under the msgId it was acknowledged with, no reply of
//! msg_id 0 belongs to a stored message, no (relateId, msgId) is stored twice, the ids of a
//! pair keep growing across the outage, and (with Redis never restarted empty) the unread
//! counters equal the stored messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbproxy_protocol::cid;
use dbproxy_protocol::pb::im::message::{ImMsgData, ImUnreadMsgCntReq, ImUnreadMsgCntRsp};
use dbproxy_protocol::{Client, ClientOptions};
use dbproxy_testkit::{PrivateMariadb, TestEnv};

use super::scaled;
use crate::common::binary::Binary;
use crate::common::{insert_user, single_text};

/// Short backend timeouts, so each outage is detected within about a second.
const LIMITS: &str = "mysql_timeout_ms = 1000\nmysql_pool_wait_ms = 1000\nredis_timeout_ms = 500\nconnect_timeout_ms = 500\nmysql_outcome_check_ms = 20000";

const SENDERS: usize = 8;

/// What one sender sent and was answered: (content, msg_id of the reply).
type Answers = Vec<(String, u32)>;

struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Answers>>,
}

/// `SENDERS` connections (contents `chaos-<round>-<i>-<n>`), each sending messages from `pairs[i].0` to `pairs[i].1` one
/// after another until stopped. Every send must be answered (a failure reply is an answer).
async fn start_load(proxy: &Binary, pairs: &[(u32, u32)], round: &'static str) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, &(from, to)) in pairs.iter().enumerate() {
        let c = Client::connect_with(
            proxy.addr,
            ClientOptions {
                request_timeout: Duration::from_secs(60),
                ..ClientOptions::default()
            },
        )
        .await
        .unwrap();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let content = format!("chaos-{round}-{i}-{n}");
                let reply: ImMsgData = c
                    .call_decode(
                        cid::MSG_DATA,
                        &single_text(
                            from,
                            to,
                            1000 + n,
                            Bytes::from(content.clone().into_bytes()),
                        ),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("send {content} not answered: {e}"));
                out.push((content, reply.msg_id));
                n += 1;
                if reply.msg_id == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            out
        }));
    }
    Load { stop, tasks }
}

impl Load {
    async fn finish(self) -> Vec<Answers> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.push(t.await.unwrap());
        }
        all
    }
}

/// Waits until a fresh send of `pair` is stored again (the backend is back for db-proxy).
async fn wait_for_service(proxy: &Binary, pair: (u32, u32), what: &str) -> Duration {
    let c = Client::connect(proxy.addr).await.unwrap();
    let start = Instant::now();
    loop {
        let reply: ImMsgData = c
            .call_decode(
                cid::MSG_DATA,
                &single_text(pair.0, pair.1, 1, Bytes::from_static(b"probe")),
            )
            .await
            .unwrap();
        if reply.msg_id != 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: no service 30 s after the backend came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn users(env: &TestEnv) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    for i in 0..SENDERS {
        let a = insert_user(env, &format!("chaos_a{i}")).await;
        let b = insert_user(env, &format!("chaos_b{i}")).await;
        pairs.push((a, b));
    }
    pairs
}

/// The checks of the module doc on what was answered and what is stored; returns how many
/// sends were acknowledged.
async fn check_stored(env: &TestEnv, answers: &[Answers], what: &str) -> usize {
    let rows = env.single_messages().await;
    let mut by_content: HashMap<Vec<u8>, Vec<(u32, u32)>> = HashMap::new();
    let mut keys = std::collections::HashSet::new();
    for (rel, id, content) in &rows {
        assert!(
            keys.insert((*rel, *id)),
            "{what}: ({rel}, {id}) stored twice"
        );
        by_content
            .entry(content.clone())
            .or_default()
            .push((*rel, *id));
    }
    let mut acked = 0;
    let mut failed = 0;
    for (i, sent) in answers.iter().enumerate() {
        let mut last = 0;
        for (content, msg_id) in sent {
            let stored = by_content
                .get(content.as_bytes())
                .map_or(&[][..], |v| &v[..]);
            if *msg_id == 0 {
                failed += 1;
                assert!(
                    stored.is_empty(),
                    "{what}: {content} was answered msg_id 0 but is stored as {stored:?}"
                );
            } else {
                acked += 1;
                assert_eq!(
                    stored.len(),
                    1,
                    "{what}: {content} acknowledged, stored {stored:?}"
                );
                assert_eq!(
                    stored[0].1, *msg_id,
                    "{what}: {content} stored under another id"
                );
                assert!(
                    *msg_id > last,
                    "{what}: sender {i}: id {msg_id} after {last} (ids must keep growing)"
                );
                last = *msg_id;
            }
        }
    }
    eprintln!("{what}: {acked} acknowledged, {failed} answered with the failure reply");
    assert!(acked > 0, "{what}: nothing was acknowledged");
    acked
}

/// Unread count of `to` from `from` through the protocol (0x0307).
async fn unread(proxy: &Binary, to: u32, from: u32) -> u32 {
    let c = Client::connect(proxy.addr).await.unwrap();
    let r: ImUnreadMsgCntRsp = c
        .call_decode(
            cid::MSG_UNREAD_CNT_REQUEST,
            &ImUnreadMsgCntReq {
                user_id: to,
                attach_data: None,
            },
        )
        .await
        .unwrap();
    r.unreadinfo_list
        .iter()
        .find(|u| u.session_id == from)
        .map_or(0, |u| u.unread_cnt)
}

/// MariaDB killed with -9 mid-load and started again (InnoDB recovers), then frozen with
/// SIGSTOP and thawed. Acknowledged sends stay stored once each; replies of 0 were not
/// stored (the outcome of sends cut off by the freeze is asked of the master once it is
/// back); unread counters (Redis never went away) equal the stored messages of each pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_killed_and_frozen_under_send_load() {
    let mut db = PrivateMariadb::start();
    let env = TestEnv::on_mariadb(&db, |_| {}).await;
    let pairs = users(&env).await;
    let proxy = Binary::start(&env, 1, LIMITS);
    let outage = Duration::from_millis(scaled(1500, 5000));

    let load = start_load(&proxy, &pairs, "m").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    db.kill9();
    tokio::time::sleep(outage).await;
    db.restart();
    let back = wait_for_service(&proxy, pairs[0], "after kill -9").await;
    eprintln!("mariadb kill -9: service back {back:?} after the restart");
    tokio::time::sleep(Duration::from_millis(800)).await;
    db.freeze();
    tokio::time::sleep(outage).await;
    db.thaw();
    let back = wait_for_service(&proxy, pairs[0], "after SIGSTOP").await;
    eprintln!("mariadb SIGSTOP: service back {back:?} after SIGCONT");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let answers = load.finish().await;

    check_stored(&env, &answers, "mariadb").await;
    // The probes of wait_for_service went to pair 0 as well.
    let rows = env.single_messages().await;
    for (i, &(a, b)) in pairs.iter().enumerate() {
        let stored_for_pair = rows
            .iter()
            .filter(|(_, _, c)| {
                c.starts_with(format!("chaos-m-{i}-").as_bytes()) || (i == 0 && c == b"probe")
            })
            .count() as u32;
        assert_eq!(
            unread(&proxy, b, a).await,
            stored_for_pair,
            "pair {i}: unread counter against the stored messages"
        );
    }
    assert!(proxy.log_text().contains("mysql"), "the outage was logged");
    drop(proxy);
    env.cleanup().await;
    drop(db);
}

/// Redis frozen (SIGSTOP) mid-load and thawed, then killed with -9 and started again empty.
/// After the freeze the unread counters equal the stored messages (increments Redis did not
/// take were kept and applied); after the restart the msgIds continue above every
/// acknowledged one (the counters are reseeded from MySQL), never reusing an id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_and_killed_under_send_load() {
    let mut env = TestEnv::new().await;
    let pairs = users(&env).await;
    let proxy = Binary::start(&env, 1, LIMITS);
    let outage = Duration::from_millis(scaled(1500, 5000));

    let load = start_load(&proxy, &pairs, "f").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.freeze_redis();
    tokio::time::sleep(outage).await;
    env.thaw_redis();
    let back = wait_for_service(&proxy, pairs[0], "after SIGSTOP").await;
    eprintln!("redis SIGSTOP: service back {back:?} after SIGCONT");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let answers = load.finish().await;
    check_stored(&env, &answers, "redis frozen").await;
    let rows = env.single_messages().await;
    for (i, &(a, b)) in pairs.iter().enumerate() {
        let stored_for_pair = rows
            .iter()
            .filter(|(_, _, c)| {
                c.starts_with(format!("chaos-f-{i}-").as_bytes()) || (i == 0 && c == b"probe")
            })
            .count() as u32;
        // Kept increments are applied within a retry period (0.5 s).
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let got = unread(&proxy, b, a).await;
            if got == stored_for_pair {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pair {i}: unread {got}, stored {stored_for_pair}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let load = start_load(&proxy, &pairs, "k").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.kill_redis();
    tokio::time::sleep(outage).await;
    env.restart_redis();
    let back = wait_for_service(&proxy, pairs[0], "after kill -9").await;
    eprintln!("redis kill -9: service back {back:?} after the restart");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let second = load.finish().await;
    // Both rounds together: the second round's ids continue above the first's.
    let both: Vec<Answers> = answers
        .into_iter()
        .zip(second)
        .map(|(mut first, then)| {
            first.extend(then);
            first
        })
        .collect();
    check_stored(&env, &both, "redis killed").await;
    drop(proxy);
    env.cleanup().await;
}
