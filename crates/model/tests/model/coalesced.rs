//! Coalesced hot paths (logins, send lookups, message writes): many concurrent calls share
//! statements, and each caller still gets exactly its own answer.

use std::sync::Arc;

use dbproxy_model::message::{NewSingleMessage, OutgoingSingle, Sent};
use dbproxy_model::user::NewUser;
use dbproxy_model::{session, Batching, Db, Store};
use dbproxy_testkit::TestEnv;
use diesel::sql_types::{Integer, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

fn user(name: &str, status: u32) -> NewUser {
    NewUser {
        name: name.into(),
        nick: format!("n-{}", name.chars().take(8).collect::<String>()),
        password: "p".into(),
        salt: "s".into(),
        status,
        ..NewUser::default()
    }
}

/// Calls of every kind run with at most one slot, so concurrent callers must queue and
/// share batches.
async fn one_slot_env() -> TestEnv {
    TestEnv::with_config(|c| {
        c.batch = Batching {
            max_batch: 16,
            write_max_batch: 16,
            read_slots: 1,
            write_slots: 1,
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_each_get_their_own_account() {
    let env = one_slot_env().await;
    let s = &env.store;
    let tricky = [
        "o'brien",
        "x\" OR \"1\"=\"1",
        "a'; DROP TABLE IMUser; --",
        "中文名",
    ];
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            s.users()
                .insert(&user(&format!("u{i}"), 0), 1)
                .await
                .unwrap(),
        );
    }
    let mut tricky_ids = Vec::new();
    for name in tricky {
        tricky_ids.push(s.users().insert(&user(name, 0), 1).await.unwrap());
    }
    // Resigned account (status 3) never logs in; duplicated name: highest id wins.
    s.users().insert(&user("gone", 3), 1).await.unwrap();
    s.users().insert(&user("twice", 0), 1).await.unwrap();
    let second = s.users().insert(&user("twice", 0), 1).await.unwrap();

    let mut tasks = Vec::new();
    for round in 0..3 {
        for i in 0..40u32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let name = format!("u{i}");
                (round, i, s.users().find_for_login(&name).await)
            }));
        }
    }
    for t in tasks {
        let (_, i, found) = t.await.unwrap();
        let found = found.unwrap().expect("seeded user found");
        assert_eq!(found.id, ids[i as usize]);
        assert_eq!(found.name, format!("u{i}"));
        assert_eq!(found.nick, format!("n-u{i}"));
    }
    let names: Vec<String> = tricky
        .iter()
        .map(|s| s.to_string())
        .chain(["gone", "twice", "nobody", "u7 ", "", "U7"].map(String::from))
        .collect();
    let lookups: Vec<_> = names
        .iter()
        .map(|n| {
            let s = s.clone();
            let n = n.clone();
            tokio::spawn(async move { s.users().find_for_login(&n).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for l in lookups {
        results.push(l.await.unwrap().map(|u| u.id));
    }
    assert_eq!(
        results[..4],
        tricky_ids.iter().map(|&i| Some(i)).collect::<Vec<_>>()[..]
    );
    assert_eq!(results[4], None, "status 3 must not log in");
    assert_eq!(results[5], Some(second), "highest id of a duplicated name");
    assert_eq!(results[6], None);
    // Compared by the column collation (utf8mb4_bin, PAD SPACE: trailing spaces ignored,
    // case-sensitive, Q-L06), as the single lookup did.
    assert_eq!(results[7], Some(ids[7]));
    assert_eq!(results[8], None);
    assert_eq!(results[9], None);
    let count: i64 = count_users(s).await;
    assert_eq!(count, 47, "the injection text changed nothing");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_of_names_equal_under_the_collation_each_find_the_account() {
    let env = one_slot_env().await;
    let s = &env.store;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            s.users()
                .insert(&user(&format!("eq{i}"), 0), 1)
                .await
                .unwrap(),
        );
    }
    // utf8mb4_bin is PAD SPACE: "eq3" and "eq3  " equal the same row, so a batch holding
    // both tags the row with one of them; the other must still find it.
    for round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..6 {
            for name in [format!("eq{i}"), format!("eq{i}  "), format!("EQ{i}")] {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let found = s.users().find_for_login(&name).await.unwrap();
                    (i, name, found.map(|u| u.id))
                }));
            }
        }
        for t in tasks {
            let (i, name, found) = t.await.unwrap();
            let want = if name.starts_with("EQ") {
                None
            } else {
                Some(ids[i])
            };
            assert_eq!(found, want, "round {round}: {name:?}");
        }
    }
    env.cleanup().await;
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count_users(s: &Store) -> i64 {
    s.on(Db::Master, async |c| {
        let r: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM IMUser")
            .get_result(c)
            .await?;
        Ok(r.n)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_send_lookups_see_their_own_pair() {
    let env = one_slot_env().await;
    let s = &env.store;
    // Pairs (i, i+100): both sessions and a relation for even i; only the sender's session
    // for i % 3 == 1; nothing else.
    let mut expected = Vec::new();
    for i in 1..=30u32 {
        let (from, to) = (i, i + 100);
        let mut want = session::SendLookup::default();
        if i % 2 == 0 {
            want.sender_session = Some(s.sessions().add(from, to, session::SINGLE).await.unwrap());
            want.receiver_session =
                Some(s.sessions().add(to, from, session::SINGLE).await.unwrap());
            want.relate_id = s.relations().get_or_create(from, to).await.unwrap();
        } else if i % 3 == 1 {
            want.sender_session = Some(s.sessions().add(from, to, session::SINGLE).await.unwrap());
        }
        expected.push(((from, to), want));
    }
    let tasks: Vec<_> = expected
        .iter()
        .map(|&((from, to), want)| {
            let s = s.clone();
            tokio::spawn(async move {
                let got = s.sessions().single_send_lookup(from, to).await.unwrap();
                assert_eq!(got, want, "pair ({from}, {to})");
                // The other direction swaps the sessions and keeps the relation.
                let back = s.sessions().single_send_lookup(to, from).await.unwrap();
                assert_eq!(back.sender_session, want.receiver_session);
                assert_eq!(back.receiver_session, want.sender_session);
                assert_eq!(back.relate_id, want.relate_id);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    env.cleanup().await;
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "msgId")]
    msg_id: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "fromId")]
    from_id: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_message_writes_are_all_stored_once_and_bump_sessions() {
    let env = one_slot_env().await;
    let s = &env.store;
    // 16 pairs over all 8 shards; 10 messages each, sent concurrently.
    let mut pairs = Vec::new();
    for i in 1..=16u32 {
        let (a, b) = (i, 1000 + i);
        let rel = s.relations().get_or_create(a, b).await.unwrap().unwrap();
        let sa = s.sessions().add(a, b, session::SINGLE).await.unwrap();
        let sb = s.sessions().add(b, a, session::SINGLE).await.unwrap();
        pairs.push((a, b, rel, sa, sb));
    }
    let pairs = Arc::new(pairs);
    let mut tasks = Vec::new();
    for p in 0..pairs.len() {
        for n in 0..10u32 {
            let s = s.clone();
            let pairs = pairs.clone();
            tasks.push(tokio::spawn(async move {
                let (a, b, rel, sa, sb) = pairs[p];
                let id = s.messages().allocate_single(rel).await.unwrap();
                let text = format!("m{n} from {a} with 'quotes' and \\ backslash");
                s.messages()
                    .store_single(
                        &NewSingleMessage {
                            relate_id: rel,
                            from_id: a,
                            to_id: b,
                            msg_id: id,
                            content: text.as_bytes(),
                            kind: 1,
                            created: 1_700_000_000 + n,
                        },
                        &[sa, sb],
                        1_700_000_500,
                    )
                    .await
                    .unwrap();
                id
            }));
        }
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    assert_eq!(acked.len(), 160);
    for &(a, _, rel, sa, sb) in pairs.iter() {
        let rows = s.messages().list_single(rel, 0, 100).await.unwrap();
        let mut ids: Vec<u32> = rows.iter().map(|m| m.msg_id).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (1..=10).collect::<Vec<_>>(),
            "relation {rel}: each message once"
        );
        assert!(rows.iter().all(|m| m.from_id == a));
        assert!(
            rows.iter()
                .any(|m| m.content
                    == format!("m3 from {a} with 'quotes' and \\ backslash").as_bytes())
        );
        for sid in [sa, sb] {
            assert_eq!(
                session_updated(s, sid).await,
                1_700_000_500,
                "session {sid} bumped"
            );
        }
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_get_consecutive_ids_rows_and_unread_counts() {
    let env = one_slot_env().await;
    let s = &env.store;
    // 12 pairs over every shard. Pair 0's counter is lost before the sends (seeded from
    // its stored MAX(msgId) = 40); the others start without any message.
    let mut pairs = Vec::new();
    for i in 1..=12u32 {
        let (a, b) = (i, 2000 + i);
        let rel = s.relations().get_or_create(a, b).await.unwrap().unwrap();
        let sa = s.sessions().add(a, b, session::SINGLE).await.unwrap();
        let sb = s.sessions().add(b, a, session::SINGLE).await.unwrap();
        pairs.push((a, b, rel, sa, sb));
    }
    let (a0, b0, rel0, sa0, sb0) = pairs[0];
    let old = NewSingleMessage {
        relate_id: rel0,
        from_id: a0,
        to_id: b0,
        msg_id: 40,
        content: b"before",
        kind: 1,
        created: 1_600_000_000,
    };
    s.messages()
        .store_single(&old, &[sa0, sb0], 1_600_000_000)
        .await
        .unwrap();
    let key0 = dbproxy_model::keys::single_counter_key(rel0);
    s.unread().del(&[key0.as_str()]).await.unwrap();

    let pairs = Arc::new(pairs);
    let mut tasks = Vec::new();
    for p in 0..pairs.len() {
        for n in 0..8u32 {
            let s = s.clone();
            let pairs = pairs.clone();
            tasks.push(tokio::spawn(async move {
                let (a, b, rel, sa, sb) = pairs[p];
                let text = format!("s{n} from {a}: '); DROP TABLE IMMessage_0; --");
                let m = OutgoingSingle {
                    relate_id: rel,
                    from_id: a,
                    to_id: b,
                    content: text.as_bytes(),
                    kind: 1,
                    created: 1_700_000_000 + n,
                };
                match s.messages().send_single(&m, &[sa, sb], 1_700_000_900).await {
                    Ok(Sent::Stored(id)) => (p, id),
                    other => panic!("send {p}/{n}: {other:?}"),
                }
            }));
        }
    }
    let mut acked: Vec<Vec<u32>> = vec![Vec::new(); pairs.len()];
    for t in tasks {
        let (p, id) = t.await.unwrap();
        acked[p].push(id);
    }
    for (p, &(a, b, rel, sa, sb)) in pairs.iter().enumerate() {
        let first = if p == 0 { 41 } else { 1 };
        let mut ids = acked[p].clone();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (first..first + 8).collect::<Vec<_>>(),
            "pair {p}: distinct, consecutive"
        );
        let rows = s.messages().list_single(rel, 0, 100).await.unwrap();
        let mut stored: Vec<u32> = rows
            .iter()
            .filter(|m| m.content != b"before")
            .map(|m| m.msg_id)
            .collect();
        stored.sort_unstable();
        assert_eq!(stored, ids, "pair {p}: every acknowledged id stored once");
        assert!(rows.iter().any(
            |m| m.content == format!("s5 from {a}: '); DROP TABLE IMMessage_0; --").as_bytes()
        ));
        let counts = s.counters().single_counts(b).await.unwrap();
        assert_eq!(counts, vec![(a, 8)], "pair {p}: unread of the receiver");
        for sid in [sa, sb] {
            assert_eq!(session_updated(s, sid).await, 1_700_000_900);
        }
    }
    // Store::timings: every message (the stored one and the 96 sends) went through each
    // stage of the store coalescer once; only the sends were counted as unread.
    let timings = s.timings();
    let stage = |name: &str| {
        timings
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no stage {name} in {timings:?}"))
            .clone()
    };
    assert_eq!(stage("store_single: queue").items, 97);
    for name in ["batch", "ids", "transaction"] {
        let t = stage(&format!("store_single: {name}"));
        assert_eq!(t.items, 97, "{t:?}");
        assert!(t.runs < 97 && t.total > std::time::Duration::ZERO, "{t:?}");
    }
    assert_eq!(stage("store_single: unread counters").items, 96);
    env.cleanup().await;
}

#[derive(QueryableByName)]
struct Updated {
    #[diesel(sql_type = Unsigned<Integer>)]
    updated: u32,
}

async fn session_updated(s: &Store, id: u32) -> u32 {
    s.on(Db::Master, async |c| {
        let r: Updated = diesel::sql_query("SELECT updated FROM IMRecentSession WHERE id = ?")
            .bind::<Unsigned<Integer>, _>(id)
            .get_result(c)
            .await?;
        Ok(r.updated)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_message_in_a_batch_fails_alone() {
    let env = one_slot_env().await;
    let s = &env.store;
    let rel = s.relations().get_or_create(1, 2).await.unwrap().unwrap();
    // The content column of IMMessage_<n> is a varchar(4096): a longer text is rejected by
    // strict mode; the good messages queued beside it must still be stored.
    let long = vec![b'x'; 70_000];
    let mut tasks = Vec::new();
    for n in 0..12u32 {
        let s = s.clone();
        let content = if n == 5 {
            long.clone()
        } else {
            format!("ok {n}").into_bytes()
        };
        tasks.push(tokio::spawn(async move {
            let r = s
                .messages()
                .store_single(
                    &NewSingleMessage {
                        relate_id: rel,
                        from_id: 1,
                        to_id: 2,
                        msg_id: 100 + n,
                        content: &content,
                        kind: 1,
                        created: 1_700_000_000,
                    },
                    &[],
                    0,
                )
                .await;
            (n, r.is_ok())
        }));
    }
    for t in tasks {
        let (n, ok) = t.await.unwrap();
        assert_eq!(ok, n != 5, "message {n}");
    }
    let rows: Vec<Stored> = s
        .on(Db::Master, async |c| {
            Ok(diesel::sql_query(format!(
                "SELECT msgId, fromId FROM {} WHERE relateId = ? ORDER BY msgId",
                dbproxy_model::shard::message_table(rel)
            ))
            .bind::<Unsigned<Integer>, _>(rel)
            .load(c)
            .await?)
        })
        .await
        .unwrap();
    let ids: Vec<u32> = rows.iter().map(|r| r.msg_id).collect();
    let want: Vec<u32> = (0..12).filter(|&n| n != 5).map(|n| 100 + n).collect();
    assert_eq!(ids, want);
    assert!(rows.iter().all(|r| r.from_id == 1));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pages_and_newest_reads_get_their_own_rows() {
    let env = one_slot_env().await;
    let s = &env.store;
    // 12 pairs (1, 100 + i) over all shards, pair i holds i + 1 messages "p<i> m<n>".
    let mut rels = Vec::new();
    for i in 0..12u32 {
        let peer = 100 + i;
        let rel = s.relations().get_or_create(1, peer).await.unwrap().unwrap();
        for n in 1..=i + 1 {
            let text = format!("p{i} m{n}");
            s.messages()
                .store_single(
                    &NewSingleMessage {
                        relate_id: rel,
                        from_id: 1,
                        to_id: peer,
                        msg_id: n,
                        content: text.as_bytes(),
                        kind: 1,
                        created: 1_700_000_000 + n,
                    },
                    &[],
                    0,
                )
                .await
                .unwrap();
        }
        rels.push(rel);
    }
    // Pages: every pair twice (all, and from msg 2 at most 1 row), a pair without a relation,
    // and a zero count; all at once so they share batches.
    let mut tasks = Vec::new();
    for i in 0..12u32 {
        for (begin, count) in [(0u32, 50u32), (2, 1)] {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let got = s
                    .messages()
                    .list_single_between(100 + i, 1, begin, count)
                    .await
                    .unwrap();
                let ids: Vec<u32> = got.iter().map(|m| m.msg_id).collect();
                let want: Vec<u32> = if begin == 0 {
                    (1..=i + 1).rev().collect()
                } else {
                    (1..=(i + 1).min(2)).rev().take(1).collect()
                };
                assert_eq!(ids, want, "pair {i}, begin {begin}, count {count}");
                assert!(got
                    .iter()
                    .all(|m| m.content == format!("p{i} m{}", m.msg_id).as_bytes()));
            }));
        }
    }
    for (a, b, count) in [(1u32, 999u32, 20u32), (1, 100, 0)] {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let got = s
                .messages()
                .list_single_between(a, b, 0, count)
                .await
                .unwrap();
            assert!(got.is_empty(), "({a}, {b}, {count})");
        }));
    }
    // Newest reads: one peer alone, several peers, and unknown peers, concurrently.
    for peers in [vec![105u32], (100..112).collect::<Vec<_>>(), vec![999, 103]] {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (singles, groups) = s.messages().newest_many(1, &peers, &[]).await.unwrap();
            assert!(groups.is_empty());
            assert_eq!(singles.len(), peers.len());
            for (peer, got) in peers.iter().zip(singles) {
                if *peer == 999 {
                    assert!(got.is_none());
                    continue;
                }
                let i = peer - 100;
                let got = got.expect("newest found");
                assert_eq!(got.msg_id, i + 1, "peer {peer}");
                assert_eq!(got.content, format!("p{i} m{}", i + 1).as_bytes());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    env.cleanup().await;
}

/// Newest reads of many relations at once take the one-list-per-shard statement: the
/// answers are those of the single reads (ties on `created` go to the later row, deleted
/// rows are skipped, a relation without messages and an unknown peer have none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_of_many_relations_matches_the_single_reads() {
    let env = TestEnv::new().await;
    let s = &env.store;
    // 140 peers: relations looked up in a padded statement of 128 pairs and one of 16.
    let peers: Vec<u32> = (200..340).collect();
    let mut rels = Vec::new();
    for &peer in &peers {
        let rel = s.relations().get_or_create(7, peer).await.unwrap().unwrap();
        rels.push(rel);
        let i = peer - 200;
        if i % 4 == 0 {
            continue; // relation without messages
        }
        // Two rows with the same time: the later row is the newest.
        for n in 1..=2u32 {
            let text = format!("r{peer} m{n}");
            s.messages()
                .store_single(
                    &NewSingleMessage {
                        relate_id: rel,
                        from_id: if n == 1 { 7 } else { peer },
                        to_id: if n == 1 { peer } else { 7 },
                        msg_id: n,
                        content: text.as_bytes(),
                        kind: 1,
                        created: 1_700_000_100,
                    },
                    &[],
                    0,
                )
                .await
                .unwrap();
        }
        if i % 4 == 2 {
            // A later row that is deleted (status 1) is not the newest.
            s.messages()
                .store_single(
                    &NewSingleMessage {
                        relate_id: rel,
                        from_id: 7,
                        to_id: peer,
                        msg_id: 3,
                        content: b"deleted",
                        kind: 1,
                        created: 1_700_000_200,
                    },
                    &[],
                    0,
                )
                .await
                .unwrap();
            let table = dbproxy_model::shard::message_table(rel);
            s.on(Db::Master, async |c| {
                diesel::sql_query(format!(
                    "UPDATE {table} SET status = 1 WHERE relateId = ? AND msgId = 3"
                ))
                .bind::<Unsigned<Integer>, _>(rel)
                .execute(c)
                .await?;
                Ok(())
            })
            .await
            .unwrap();
        }
    }
    let mut asked = peers.clone();
    asked.push(999); // no relation
    asked.push(205); // asked twice
    let (singles, _) = s.messages().newest_many(7, &asked, &[]).await.unwrap();
    assert_eq!(singles.len(), asked.len());
    for (peer, got) in asked.iter().zip(&singles) {
        if *peer == 999 {
            assert!(got.is_none());
            continue;
        }
        let i = peer - 200;
        let rel = rels[i as usize];
        let single = s.messages().newest_single(rel).await.unwrap();
        assert_eq!(
            got.as_ref()
                .map(|n| (n.msg_id, n.from_id, n.content.clone())),
            single.map(|n| (n.msg_id, n.from_id, n.content)),
            "peer {peer}"
        );
        if i % 4 == 0 {
            assert!(got.is_none(), "peer {peer} has no messages");
        } else {
            let got = got.as_ref().expect("newest found");
            assert_eq!((got.msg_id, got.from_id), (2, *peer), "peer {peer}");
            assert_eq!(got.content, format!("r{peer} m2").as_bytes());
        }
    }
    env.cleanup().await;
}

/// Unread increments Redis refuses after the messages are committed are kept and applied
/// once Redis takes them again: here `unread_<to>` is made a string (HINCRBY fails with
/// WRONGTYPE) for three sends, then removed; the counter catches up with all three without
/// a further send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_increments_redis_refused_are_applied_when_it_takes_them() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let (a, b) = (11u32, 12u32);
    let rel = s.relations().get_or_create(a, b).await.unwrap().unwrap();
    let sa = s.sessions().add(a, b, session::SINGLE).await.unwrap();
    let sb = s.sessions().add(b, a, session::SINGLE).await.unwrap();
    let unread_key = dbproxy_model::keys::single_unread_key(b);
    s.unread().set(&unread_key, "not a hash").await.unwrap();
    for n in 0..3u32 {
        let m = OutgoingSingle {
            relate_id: rel,
            from_id: a,
            to_id: b,
            content: b"while the counter is broken",
            kind: 1,
            created: 1_700_000_000 + n,
        };
        match s.messages().send_single(&m, &[sa, sb], 1_700_000_100).await {
            Ok(Sent::Stored(id)) => assert_eq!(id, n + 1),
            other => panic!("send {n}: {other:?}"),
        }
    }
    assert_eq!(
        s.unread().get(&unread_key).await.unwrap().as_deref(),
        Some("not a hash"),
        "the increments were refused"
    );
    s.unread().del(&[unread_key.as_str()]).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = s.unread().hget(&unread_key, &a.to_string()).await.unwrap();
        if got.as_deref() == Some("3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kept increments not applied: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Applied once: nothing is left to add again.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let got = s.unread().hget(&unread_key, &a.to_string()).await.unwrap();
    assert_eq!(got.as_deref(), Some("3"));
    env.cleanup().await;
}

/// A send whose unit of work times out before its COMMIT (the session UPDATE waits for a
/// row another transaction holds) has an unknown outcome for the model: it asks the master
/// (a locking read of the row), and the answer matches what the table holds. The case of a
/// COMMIT that went through after the timeout is the chaos suite's (MariaDB frozen mid-load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_off_by_its_timeout_is_answered_by_what_the_master_holds() {
    let env = TestEnv::with_config(|c| {
        c.timeouts.statement = std::time::Duration::from_millis(400);
        c.timeouts.outcome_check = std::time::Duration::from_secs(20);
    })
    .await;
    let s = &env.store;
    let (a, b) = (21u32, 22u32);
    let rel = s.relations().get_or_create(a, b).await.unwrap().unwrap();
    let sa = s.sessions().add(a, b, session::SINGLE).await.unwrap();
    let sb = s.sessions().add(b, a, session::SINGLE).await.unwrap();

    // Another client holds the session row for 1.5 s.
    let url = format!(
        "{}/{}",
        env.admin_url().split('?').next().unwrap(),
        env.db_name
    );
    let url = if env.admin_url().contains('?') {
        format!("{url}?{}", env.admin_url().split('?').nth(1).unwrap())
    } else {
        url
    };
    let mut blocker =
        <diesel_async::AsyncMysqlConnection as diesel_async::AsyncConnection>::establish(&url)
            .await
            .unwrap();
    diesel::sql_query("BEGIN")
        .execute(&mut blocker)
        .await
        .unwrap();
    diesel::sql_query("SELECT id FROM IMRecentSession WHERE id = ? FOR UPDATE")
        .bind::<Unsigned<Integer>, _>(sa)
        .execute(&mut blocker)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        diesel::sql_query("ROLLBACK")
            .execute(&mut blocker)
            .await
            .unwrap();
        blocker
    });

    let started = std::time::Instant::now();
    let m = OutgoingSingle {
        relate_id: rel,
        from_id: a,
        to_id: b,
        content: b"cut off",
        kind: 1,
        created: 1_700_000_000,
    };
    let sent = s.messages().send_single(&m, &[sa, sb], 1_700_000_100).await;
    let took = started.elapsed();
    let _blocker = release.await.unwrap();
    let stored = s.messages().list_single(rel, 0, 10).await.unwrap();
    match sent {
        Ok(Sent::Stored(id)) => {
            assert_eq!(stored.len(), 1, "answered stored: the row is there");
            assert_eq!(stored[0].msg_id, id);
        }
        Ok(Sent::NotStored { .. }) | Err(_) => {
            assert!(stored.is_empty(), "answered not stored, yet {stored:?}");
        }
    }
    // The unit timed out (0.4 s) while the row was held; the answer still had to come
    // from the master, not from the timeout alone.
    assert!(took >= std::time::Duration::from_millis(400), "{took:?}");
    env.cleanup().await;
}
