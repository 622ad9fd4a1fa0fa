//! Concurrency tests for the check-then-insert and counter paths (Q-D04, Q-M05, Q-C01).
//! Each would fail on the naive implementation of the original.

use std::collections::HashSet;

use dbproxy_model::message::{NewGroupMessage, NewSingleMessage};
use dbproxy_model::{session, Db, MysqlResultExt};
use dbproxy_testkit::TestEnv;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(env: &TestEnv, sql: &'static str) -> i64 {
    env.store
        .master(async |c| diesel::sql_query(sql).get_result::<N>(c).await.ctx("count"))
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_relation_creation_makes_one_row() {
    let env = TestEnv::new().await;
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            // Both orders of the pair.
            let (a, b) = if i % 2 == 0 { (7, 3) } else { (3, 7) };
            store.relations().get_or_create(a, b).await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap().unwrap());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(
        count(&env, "SELECT COUNT(*) AS n FROM IMRelationShip").await,
        1
    );
    let id = *ids.iter().next().unwrap();
    assert_eq!(
        env.store
            .unread()
            .get(&format!("msg_id_{id}"))
            .await
            .unwrap()
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        env.store.relations().find(Db::Slave, 3, 7).await.unwrap(),
        Some(id)
    );
    assert_eq!(
        env.store.relations().find(Db::Slave, 0, 7).await.unwrap(),
        None
    );
    assert_eq!(
        env.store.relations().get_or_create(0, 7).await.unwrap(),
        None
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relation_reactivates_and_does_not_clobber_counter() {
    let env = TestEnv::new().await;
    let id = env
        .store
        .relations()
        .get_or_create(1, 2)
        .await
        .unwrap()
        .unwrap();
    env.store
        .unread()
        .set(&format!("msg_id_{id}"), "41")
        .await
        .unwrap();
    env.run_sql("UPDATE IMRelationShip SET status = 1").await;
    assert_eq!(
        env.store.relations().find(Db::Slave, 1, 2).await.unwrap(),
        None
    );
    assert_eq!(
        env.store.relations().get_or_create(2, 1).await.unwrap(),
        Some(id)
    );
    assert_eq!(
        env.store.relations().find(Db::Slave, 1, 2).await.unwrap(),
        Some(id)
    );
    assert_eq!(
        env.store
            .unread()
            .get(&format!("msg_id_{id}"))
            .await
            .unwrap()
            .as_deref(),
        Some("41")
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_session_add_makes_one_row_per_side() {
    let env = TestEnv::new().await;
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            let (u, p) = if i % 2 == 0 { (10, 20) } else { (20, 10) };
            store.sessions().get_or_add(u, p, session::SINGLE).await
        }));
    }
    for t in tasks {
        assert_ne!(t.await.unwrap().unwrap(), 0);
    }
    assert_eq!(
        count(&env, "SELECT COUNT(*) AS n FROM IMRecentSession").await,
        2
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) AS n FROM IMRecentSession WHERE userId = 10 AND peerId = 20"
        )
        .await,
        1
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_lifecycle() {
    let env = TestEnv::new().await;
    let s = &env.store;
    assert_eq!(
        s.sessions().find(Db::Slave, 1, 2, 1, false).await.unwrap(),
        None
    );
    let id = s.sessions().add(1, 2, 1).await.unwrap();
    assert_eq!(
        s.sessions().find(Db::Slave, 1, 2, 1, false).await.unwrap(),
        Some(id)
    );
    assert!(s.sessions().update(id, 4_000_000_000).await.unwrap());
    assert!(!s.sessions().update(0, 5).await.unwrap());
    assert!(!s.sessions().update(999_999, 5).await.unwrap());
    let rec = s.sessions().recent(1, 0).await.unwrap();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].updated, 4_000_000_000);
    assert_eq!((rec[0].peer_id, rec[0].kind, rec[0].status), (2, 1, 0));
    assert!(s
        .sessions()
        .recent(1, 4_000_000_000)
        .await
        .unwrap()
        .is_empty());
    assert!(s.sessions().remove(id).await.unwrap());
    assert!(!s.sessions().remove(0).await.unwrap());
    assert_eq!(
        s.sessions().find(Db::Slave, 1, 2, 1, false).await.unwrap(),
        None
    );
    assert_eq!(
        s.sessions().find(Db::Master, 1, 2, 1, true).await.unwrap(),
        Some(id)
    );
    assert!(s.sessions().recent(1, 0).await.unwrap().is_empty());
    // add reactivates the same row
    assert_eq!(s.sessions().add(1, 2, 1).await.unwrap(), id);
    assert_eq!(s.sessions().recent(1, 0).await.unwrap().len(), 1);
    // recent is capped at 100, newest first
    for p in 100..220u32 {
        let sid = s.sessions().add(5, p, 2).await.unwrap();
        s.sessions().update(sid, p).await.unwrap();
    }
    let rec = s.sessions().recent(5, 0).await.unwrap();
    assert_eq!(rec.len(), 100);
    assert_eq!(rec[0].peer_id, 219);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_id_allocation_is_unique_and_reseeds_from_mysql() {
    let env = TestEnv::new().await;
    let rel = env
        .store
        .relations()
        .get_or_create(1, 2)
        .await
        .unwrap()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            store.messages().allocate_single(rel).await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        assert!(ids.insert(t.await.unwrap().unwrap()));
    }
    assert_eq!(ids.len(), 100);
    assert_eq!(*ids.iter().max().unwrap(), 100);

    // Store a message with msgId 100, lose the key, allocate concurrently again.
    env.store
        .messages()
        .store_single(
            &NewSingleMessage {
                relate_id: rel,
                from_id: 1,
                to_id: 2,
                msg_id: 100,
                content: b"x",
                kind: 1,
                created: 5,
            },
            &[],
            0,
        )
        .await
        .unwrap();
    env.store
        .unread()
        .del(&[&format!("msg_id_{rel}")])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            store.messages().allocate_single(rel).await
        }));
    }
    let mut ids2 = HashSet::new();
    for t in tasks {
        ids2.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(ids2, (101..=120).collect::<HashSet<u32>>());

    // Group counter: missing key seeded from IMGroupMessage_<G % 8>.
    env.store
        .messages()
        .store_group(
            &NewGroupMessage {
                group_id: 9,
                from_id: 1,
                msg_id: 7,
                content: b"g",
                kind: 0x11,
                created: 5,
            },
            6,
            &[],
            0,
        )
        .await
        .unwrap();
    assert_eq!(env.store.messages().allocate_group(9).await.unwrap(), 8);
    assert_eq!(env.store.messages().allocate_group(9).await.unwrap(), 9);
    assert_eq!(env.store.messages().allocate_group(17).await.unwrap(), 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_group_sends_and_read_acks_leave_exact_counts() {
    let env = TestEnv::new().await;
    let (g, sender, reader) = (5u32, 1u32, 2u32);
    let mut sends = Vec::new();
    let mut acks = Vec::new();
    for i in 0..200 {
        let store = env.store.clone();
        if i % 2 == 0 {
            sends.push(tokio::spawn(async move {
                store.counters().group_incr(g, sender).await
            }));
        } else {
            acks.push(tokio::spawn(async move {
                store.counters().group_mark_read(reader, g).await
            }));
        }
    }
    let mut totals = HashSet::new();
    for t in sends {
        totals.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(totals, (1..=100).collect::<HashSet<u64>>());
    let mut max_seen = 0;
    for t in acks {
        if let Some(v) = t.await.unwrap().unwrap() {
            max_seen = max_seen.max(v);
        }
    }
    let un = env
        .store
        .counters()
        .group_unread(sender, &[g])
        .await
        .unwrap();
    assert_eq!(
        un,
        vec![(g, Some(0))],
        "sender must have read everything it sent"
    );
    let un = env
        .store
        .counters()
        .group_unread(reader, &[g, 77])
        .await
        .unwrap();
    assert_eq!(un, vec![(g, Some((100 - max_seen) as u32)), (77, None)]);
    assert_eq!(
        env.store
            .counters()
            .group_mark_read(reader, g)
            .await
            .unwrap(),
        Some(100)
    );
    assert_eq!(
        env.store
            .counters()
            .group_unread(reader, &[g])
            .await
            .unwrap(),
        vec![(g, Some(0))]
    );
    assert_eq!(
        env.store
            .counters()
            .group_mark_read(reader, 77)
            .await
            .unwrap(),
        None
    );
    env.cleanup().await;
}

/// Q-M02 under contention: sends in both directions of one pair bump the same two session
/// rows. Bumping them in caller order deadlocks in InnoDB (one side loses its message);
/// every send must be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_direction_sends_never_lose_a_message() {
    let env = TestEnv::new().await;
    let (a, b) = (11, 12);
    let sa = env
        .store
        .sessions()
        .get_or_add(a, b, session::SINGLE)
        .await
        .unwrap();
    let sb = env
        .store
        .sessions()
        .get_or_add(b, a, session::SINGLE)
        .await
        .unwrap();
    let rel = env
        .store
        .relations()
        .get_or_create(a, b)
        .await
        .unwrap()
        .unwrap();
    let mut total = 0;
    for round in 0..6u32 {
        let mut tasks = Vec::new();
        for i in 0..16u32 {
            let store = env.store.clone();
            let (from, to, sessions) = if i % 2 == 0 {
                (a, b, [sa, sb])
            } else {
                (b, a, [sb, sa])
            };
            tasks.push(tokio::spawn(async move {
                let id = store.messages().allocate_single(rel).await?;
                store
                    .messages()
                    .store_single(
                        &NewSingleMessage {
                            relate_id: rel,
                            from_id: from,
                            to_id: to,
                            msg_id: id,
                            content: b"hello",
                            kind: 1,
                            created: 1000 + round,
                        },
                        &sessions,
                        2000 + round * 16 + i,
                    )
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
            total += 1;
        }
    }
    const TABLES: [&str; 8] = [
        "SELECT COUNT(*) AS n FROM IMMessage_0",
        "SELECT COUNT(*) AS n FROM IMMessage_1",
        "SELECT COUNT(*) AS n FROM IMMessage_2",
        "SELECT COUNT(*) AS n FROM IMMessage_3",
        "SELECT COUNT(*) AS n FROM IMMessage_4",
        "SELECT COUNT(*) AS n FROM IMMessage_5",
        "SELECT COUNT(*) AS n FROM IMMessage_6",
        "SELECT COUNT(*) AS n FROM IMMessage_7",
    ];
    let mut stored_all = 0;
    for sql in TABLES {
        stored_all += count(&env, sql).await;
    }
    assert_eq!(stored_all, total);
    env.cleanup().await;
}
