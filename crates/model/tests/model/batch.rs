//! Batched reads of the send, fetch, unread and recent-session paths: same answers as the
//! one-at-a-time calls they replace.

use dbproxy_model::message::{NewGroupMessage, NewSingleMessage};
use dbproxy_model::{session, Db};
use dbproxy_testkit::TestEnv;

async fn single(env: &TestEnv, from: u32, to: u32, msg_id: u32, created: u32, text: &[u8]) {
    let rel = env
        .store
        .relations()
        .get_or_create(from, to)
        .await
        .unwrap()
        .unwrap();
    env.store
        .messages()
        .store_single(
            &NewSingleMessage {
                relate_id: rel,
                from_id: from,
                to_id: to,
                msg_id,
                content: text,
                kind: 1,
                created,
            },
            &[],
            0,
        )
        .await
        .unwrap();
}

/// `singles[i]` is what the one-at-a-time reads give for `peers[i]`: its relation, then
/// that relation's newest message.
async fn assert_same_as_single_reads(
    s: &dbproxy_model::Store,
    user: u32,
    peers: &[u32],
    singles: &[Option<dbproxy_model::message::Newest>],
) {
    assert_eq!(singles.len(), peers.len());
    for (peer, got) in peers.iter().zip(singles) {
        let want = match s.relations().find(Db::Slave, user, *peer).await.unwrap() {
            Some(rel) => s.messages().newest_single(rel).await.unwrap(),
            None => None,
        };
        assert_eq!(got, &want, "peer {peer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_many_matches_single_lookups() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let user = 5;
    // Peers spread over several shards; 9 has a relation but no message; 0 and 77 nothing.
    for (peer, n) in [(1u32, 3u32), (2, 1), (6, 2), (13, 4), (300, 1)] {
        for i in 1..=n {
            single(
                &env,
                if i % 2 == 0 { peer } else { user },
                if i % 2 == 0 { user } else { peer },
                i,
                100 + i,
                format!("m{peer}-{i} ' OR 1=1 --").as_bytes(),
            )
            .await;
        }
    }
    s.relations().get_or_create(user, 9).await.unwrap();
    for (g, n) in [(3u32, 2u32), (11, 1)] {
        for i in 1..=n {
            s.messages()
                .store_group(
                    &NewGroupMessage {
                        group_id: g,
                        from_id: 40 + i,
                        msg_id: i,
                        content: b"g\xF0\x9F\x98\x80",
                        kind: 0x11,
                        created: 200 + i,
                    },
                    1,
                    &[],
                    0,
                )
                .await
                .unwrap();
        }
    }
    let peers = [13, 0, 1, 9, 77, 2, 6, 300, 1];
    let groups = [11, 4, 3, 11];
    let (singles, group_rows) = s
        .messages()
        .newest_many(user, &peers, &groups)
        .await
        .unwrap();
    assert_eq!(singles.len(), peers.len());
    assert_eq!(group_rows.len(), groups.len());
    assert_same_as_single_reads(s, user, &peers, &singles).await;
    assert_eq!(singles[2].as_ref().unwrap().msg_id, 3);
    assert!(singles[3].is_none() && singles[4].is_none() && singles[1].is_none());
    for (g, got) in groups.iter().zip(&group_rows) {
        assert_eq!(
            got,
            &s.messages().newest_group(*g).await.unwrap(),
            "group {g}"
        );
    }
    assert_eq!(group_rows[2].as_ref().unwrap().from_id, 42);
    let (a, b) = s.messages().newest_many(user, &[], &[]).await.unwrap();
    assert!(a.is_empty() && b.is_empty());
    env.cleanup().await;
}

/// A few relations crowded into one shard (3 of a round's 32 slot parts would be real) are
/// read through the one-list-per-shard texts instead of a one-off text: same answers as the
/// single reads, relations without messages and unknown peers included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_of_a_crowded_shard_matches_single_lookups() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let user = 3;
    // Relation ids are given in creation order: peers 100.. get 1, 2, 3, ...
    let mut rels = Vec::new();
    for peer in 100..=117u32 {
        rels.push((
            peer,
            s.relations()
                .get_or_create(user, peer)
                .await
                .unwrap()
                .unwrap(),
        ));
    }
    let shard = |rel: u32| rel % 8;
    let target = shard(rels[0].1);
    let crowded: Vec<(u32, u32)> = rels
        .iter()
        .copied()
        .filter(|&(_, rel)| shard(rel) == target)
        .collect();
    assert!(crowded.len() >= 3, "ids of one shard: {crowded:?}");
    for (n, &(peer, _)) in crowded.iter().enumerate().skip(1) {
        for i in 1..=(n as u32 + 1) {
            single(
                &env,
                peer,
                user,
                i,
                500 + i,
                format!("{peer}/{i} \\' x").as_bytes(),
            )
            .await;
        }
    }
    let mut peers: Vec<u32> = crowded.iter().map(|&(p, _)| p).collect();
    peers.push(999);
    let (singles, _) = s.messages().newest_many(user, &peers, &[]).await.unwrap();
    assert_same_as_single_reads(s, user, &peers, &singles).await;
    assert!(singles[0].is_none(), "relation without messages");
    assert!(singles[peers.len() - 1].is_none(), "no relation");
    let last = crowded.len() as u32;
    assert_eq!(
        singles[crowded.len() - 1].as_ref().map(|n| n.msg_id),
        Some(last)
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_lookup_and_list_between() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let none = s.sessions().single_send_lookup(1, 2).await.unwrap();
    assert_eq!(none, session::SendLookup::default());
    let a = s
        .sessions()
        .get_or_add(1, 2, session::SINGLE)
        .await
        .unwrap();
    let found = s.sessions().single_send_lookup(1, 2).await.unwrap();
    assert_eq!(found.sender_session, Some(a));
    assert_eq!(found.receiver_session, None);
    assert_eq!(found.relate_id, None);
    let b = s
        .sessions()
        .get_or_add(2, 1, session::SINGLE)
        .await
        .unwrap();
    // A group session and a removed session of the pair are not picked up.
    s.sessions().get_or_add(1, 2, session::GROUP).await.unwrap();
    let rel = s.relations().get_or_create(2, 1).await.unwrap();
    let found = s.sessions().single_send_lookup(1, 2).await.unwrap();
    assert_eq!(
        found,
        session::SendLookup {
            sender_session: Some(a),
            receiver_session: Some(b),
            relate_id: rel,
        }
    );
    s.sessions().remove(b).await.unwrap();
    assert_eq!(
        s.sessions()
            .single_send_lookup(2, 1)
            .await
            .unwrap()
            .sender_session,
        None
    );
    assert_eq!(
        s.sessions().single_send_lookup(1, 1).await.unwrap(),
        session::SendLookup::default()
    );

    single(&env, 1, 2, 1, 10, b"x").await;
    single(&env, 2, 1, 2, 11, b"y").await;
    let between = s.messages().list_single_between(2, 1, 0, 10).await.unwrap();
    let direct = s.messages().list_single(rel.unwrap(), 0, 10).await.unwrap();
    assert_eq!(between, direct);
    assert_eq!(between.len(), 2);
    assert!(s
        .messages()
        .list_single_between(1, 3, 0, 10)
        .await
        .unwrap()
        .is_empty());
    env.cleanup().await;
}

/// Session bumps of up to 64 ids go through padded prepared texts (a batch of 32 sends bumps
/// up to 64 sessions), longer lists through a one-off text: every listed row gets the time,
/// no other row does, and the count is of distinct rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_bumps_of_every_size_update_exactly_their_rows() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let mut ids = Vec::new();
    for peer in 1..=70u32 {
        ids.push(s.sessions().add(9, peer, session::SINGLE).await.unwrap());
    }
    for (n, t) in [
        (33usize, 1_800_000_033u32),
        (48, 1_800_000_048),
        (50, 1_800_000_050),
        (64, 1_800_000_064),
        (70, 1_800_000_070),
    ] {
        // Reversed and with a duplicate: the statement sorts and de-duplicates.
        let mut chosen: Vec<u32> = ids[..n].iter().rev().copied().collect();
        chosen.push(ids[0]);
        assert_eq!(s.sessions().bump(&chosen, t).await.unwrap(), n, "{n} ids");
        let updated: std::collections::HashMap<u32, u32> = s
            .sessions()
            .recent(9, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.updated))
            .collect();
        assert_eq!(updated.len(), 70);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(updated[id] == t, i < n, "{n} ids: row {i}");
        }
    }
    env.cleanup().await;
}

/// Marks every relation removed (status 1) behind db-proxy's back, as another program could.
async fn remove_relations_elsewhere(env: &TestEnv) {
    env.run_sql("UPDATE IMRelationShip SET status = 1").await;
}

/// Messages of the pair's page and whether it has a newest message, through the batched reads.
async fn page_and_newest(s: &dbproxy_model::Store, user: u32, peer: u32) -> (usize, bool) {
    let page = s
        .messages()
        .list_single_between(user, peer, 0, 10)
        .await
        .unwrap();
    let (singles, _) = s.messages().newest_many(user, &[peer], &[]).await.unwrap();
    (page.len(), singles.first().is_some_and(Option::is_some))
}

/// Message lists and newest-message reads use a relation id read or created within
/// `relation_ids_ttl` without asking IMRelationShip again: a relation removed by another
/// program still serves them until the ttl is over, and no longer after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_relation_ids_serve_reads_for_their_ttl_only() {
    let env = TestEnv::with_config(|c| {
        c.relation_ids_ttl = std::time::Duration::from_secs(2);
    })
    .await;
    let s = &env.store;
    single(&env, 1, 2, 1, 10, b"x").await;
    assert_eq!(page_and_newest(s, 1, 2).await, (1, true));
    remove_relations_elsewhere(&env).await;
    // Within the ttl: the remembered id, for reads and for the send lookup.
    assert_eq!(page_and_newest(s, 2, 1).await, (1, true));
    let rel = s
        .sessions()
        .single_send_lookup(2, 1)
        .await
        .unwrap()
        .relate_id;
    assert!(rel.is_some());
    // An exact lookup never uses remembered ids.
    assert_eq!(s.relations().find(Db::Slave, 1, 2).await.unwrap(), None);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(page_and_newest(s, 1, 2).await, (0, false));
    let found = s.sessions().single_send_lookup(1, 2).await.unwrap();
    assert_eq!(found.relate_id, None);
    env.cleanup().await;
}

/// With a zero ttl every read asks IMRelationShip; "no relation" is never remembered, with
/// any ttl: a relation that appears later is found by the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relation_ids_are_asked_again_without_ttl_or_when_missing() {
    let env = TestEnv::with_config(|c| {
        c.relation_ids_ttl = std::time::Duration::ZERO;
    })
    .await;
    single(&env, 1, 2, 1, 10, b"x").await;
    assert_eq!(page_and_newest(&env.store, 1, 2).await, (1, true));
    remove_relations_elsewhere(&env).await;
    assert_eq!(page_and_newest(&env.store, 1, 2).await, (0, false));
    env.cleanup().await;

    let env = TestEnv::new().await;
    assert_eq!(page_and_newest(&env.store, 3, 4).await, (0, false));
    single(&env, 4, 3, 1, 10, b"y").await;
    assert_eq!(page_and_newest(&env.store, 3, 4).await, (1, true));
    env.cleanup().await;
}

/// Enough conversations for the one-list-per-shard texts (20 relations, 18 groups), each with
/// rows that share the newest second and a later hidden row: the highest id at the newest
/// visible second wins, exactly as the single reads' `ORDER BY created DESC, id DESC`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_many_through_lists_breaks_ties_by_id() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let user = 4;
    let peers: Vec<u32> = (200..220).collect();
    for &peer in &peers {
        // msgIds 1..3 at second 700, 900, 900 (3 is stored last, so it has the highest id),
        // then msgId 4 at 950 with status 1 (hidden).
        for (msg_id, created) in [(1u32, 700u32), (3, 900), (2, 900)] {
            let (from, to) = if msg_id == 2 {
                (peer, user)
            } else {
                (user, peer)
            };
            single(
                &env,
                from,
                to,
                msg_id,
                created,
                format!("{peer}:{msg_id}").as_bytes(),
            )
            .await;
        }
        single(&env, user, peer, 4, 950, b"hidden").await;
    }
    for sql in [
        "UPDATE IMMessage_0 SET status = 1 WHERE msgId = 4",
        "UPDATE IMMessage_1 SET status = 1 WHERE msgId = 4",
        "UPDATE IMMessage_2 SET status = 1 WHERE msgId = 4",
        "UPDATE IMMessage_3 SET status = 1 WHERE msgId = 4",
        "UPDATE IMMessage_4 SET status = 1 WHERE msgId = 4",
        "UPDATE IMMessage_5 SET status = 1 WHERE msgId = 4",
        "UPDATE IMMessage_6 SET status = 1 WHERE msgId = 4",
        "UPDATE IMMessage_7 SET status = 1 WHERE msgId = 4",
    ] {
        env.run_sql(sql).await;
    }
    let groups: Vec<u32> = (30..48).collect();
    for &g in &groups {
        for (msg_id, created) in [(1u32, 300u32), (2, 400), (3, 400)] {
            s.messages()
                .store_group(
                    &NewGroupMessage {
                        group_id: g,
                        from_id: 60 + msg_id,
                        msg_id,
                        content: b"g",
                        kind: 17,
                        created,
                    },
                    1,
                    &[],
                    0,
                )
                .await
                .unwrap();
        }
    }
    let (singles, group_rows) = s
        .messages()
        .newest_many(user, &peers, &groups)
        .await
        .unwrap();
    assert_same_as_single_reads(s, user, &peers, &singles).await;
    for got in &singles {
        let got = got.as_ref().expect("newest");
        assert_eq!(got.msg_id, 2, "the last stored at second 900");
    }
    for (g, got) in groups.iter().zip(&group_rows) {
        assert_eq!(
            got,
            &s.messages().newest_group(*g).await.unwrap(),
            "group {g}"
        );
        assert_eq!(got.as_ref().map(|n| n.msg_id), Some(3));
    }
    env.cleanup().await;
}

/// Messages by ids of a pair through the remembered relation ids: the same rows as through
/// the relation read, before and after the id is remembered; an unknown pair has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_ids_between_matches_the_relation_read() {
    let env = TestEnv::new().await;
    let s = &env.store;
    for i in 1..=5u32 {
        single(&env, 7, 8, i, 100 + i, format!("t{i}").as_bytes()).await;
    }
    let rel = s.relations().find(Db::Slave, 7, 8).await.unwrap().unwrap();
    let want = s.messages().by_ids_single(rel, &[2, 4, 9]).await.unwrap();
    assert_eq!(want.len(), 2);
    for _ in 0..2 {
        assert_eq!(
            s.messages()
                .by_ids_single_between(8, 7, &[2, 4, 9])
                .await
                .unwrap(),
            want
        );
    }
    assert!(s
        .messages()
        .by_ids_single_between(7, 99, &[1])
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .messages()
        .by_ids_single_between(7, 7, &[1])
        .await
        .unwrap()
        .is_empty());
    env.cleanup().await;
}
