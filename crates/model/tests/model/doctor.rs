//! The doctor against each kind of damage the original's races leave, built with plain
//! SQL and Redis writes: found with its count, repaired without losing a message, and not
//! found again.

use dbproxy_model::doctor::Damage;
use dbproxy_model::keys::{group_counter_key, member_key, single_counter_key};
use dbproxy_model::session;
use dbproxy_testkit::TestEnv;

/// Builds one case of every kind; see each statement.
async fn damage(env: &TestEnv) {
    // Users 1 and 2 got two relations; messages under the lower id are invisible.
    env.run_sql(
        "INSERT INTO IMRelationShip (id, smallId, bigId, status, created, updated) \
         VALUES (1, 1, 2, 0, 1, 1), (2, 1, 2, 0, 2, 2)",
    )
    .await;
    env.run_sql(
        "INSERT INTO IMMessage_1 (relateId, fromId, toId, msgId, content, status, type, created, updated) \
         VALUES (1, 1, 2, 1, 'lost one', 0, 1, 100, 100), (1, 2, 1, 2, 'lost two', 0, 1, 103, 103)",
    )
    .await;
    env.run_sql(
        "INSERT INTO IMMessage_2 (relateId, fromId, toId, msgId, content, status, type, created, updated) \
         VALUES (2, 1, 2, 1, 'kept one', 0, 1, 102, 102)",
    )
    .await;
    // User 5 sees peer 6 three times.
    env.run_sql(
        "INSERT INTO IMRecentSession (id, userId, peerId, type, status, created, updated) \
         VALUES (1, 5, 6, 1, 0, 1, 10), (2, 5, 6, 1, 0, 1, 20), (3, 5, 6, 1, 0, 1, 15)",
    )
    .await;
    // Relation 10: two messages with msgId 0, two sharing msgId 5, one 6.
    env.run_sql(
        "INSERT INTO IMMessage_2 (relateId, fromId, toId, msgId, content, status, type, created, updated) \
         VALUES (10, 3, 4, 0, 'zero a', 0, 1, 200, 200), (10, 3, 4, 5, 'five a', 0, 1, 201, 201), \
                (10, 4, 3, 5, 'five b', 0, 1, 202, 202), (10, 3, 4, 0, 'zero b', 0, 1, 203, 203), \
                (10, 3, 4, 6, 'six', 0, 1, 204, 204)",
    )
    .await;
    // Group 11 has messages up to 4; counters of relation 10 and group 11 are behind.
    env.run_sql(
        "INSERT INTO IMGroupMessage_3 (groupId, userId, msgId, content, type, status, updated, created) \
         VALUES (11, 3, 4, 'group four', 17, 0, 300, 300)",
    )
    .await;
    env.store
        .unread()
        .set(&single_counter_key(10), "3")
        .await
        .unwrap();
    env.store
        .unread()
        .set(&group_counter_key(11), "2")
        .await
        .unwrap();
    // Group 12 has an active member and no member hash.
    env.run_sql(
        "INSERT INTO IMGroupMember (groupId, userId, status, created, updated) VALUES (12, 7, 0, 1, 50)",
    )
    .await;
}

async fn counts(env: &TestEnv) -> Vec<(Damage, usize)> {
    env.store
        .doctor()
        .check()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.damage, f.count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_damage_is_found_and_repaired_without_losing_a_message() {
    let env = TestEnv::new().await;
    let s = &env.store;
    assert!(
        counts(&env).await.iter().all(|(_, n)| *n == 0),
        "a clean database"
    );
    damage(&env).await;

    // Before the repair db-proxy reads the highest relation and the newest session.
    assert_eq!(
        s.relations()
            .find(dbproxy_model::Db::Master, 1, 2)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        s.sessions()
            .find(dbproxy_model::Db::Master, 5, 6, session::SINGLE, false)
            .await
            .unwrap(),
        Some(3)
    );

    let found = s.doctor().check().await.unwrap();
    let by_kind = |d: Damage| found.iter().find(|f| f.damage == d).unwrap();
    assert_eq!(by_kind(Damage::DuplicateRelations).count, 1);
    assert!(by_kind(Damage::DuplicateRelations).examples[0].contains("users 1 and 2"));
    assert_eq!(by_kind(Damage::DuplicateSessions).count, 1);
    // (relation 10, msgId 0) and (relation 10, msgId 5).
    assert_eq!(by_kind(Damage::BadMessageIds).count, 2);
    assert_eq!(by_kind(Damage::CountersBehind).count, 2);
    assert_eq!(by_kind(Damage::MissingMemberHashes).count, 1);
    // The check changed nothing.
    assert_eq!(
        counts(&env).await,
        found
            .iter()
            .map(|f| (f.damage, f.count))
            .collect::<Vec<_>>()
    );

    let changes = s.doctor().repair().await.unwrap();
    assert!(changes.len() >= 7, "{changes:#?}");
    assert!(
        counts(&env).await.iter().all(|(_, n)| *n == 0),
        "left after repair: {:?}",
        counts(&env).await
    );

    // Relation 2 now holds all three messages, old ones after its own msgIds.
    let mut kept: Vec<(u32, Vec<u8>)> = s
        .messages()
        .list_single(2, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.msg_id, m.content))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            (1, b"kept one".to_vec()),
            (2, b"lost one".to_vec()),
            (3, b"lost two".to_vec())
        ]
    );
    assert_eq!(
        s.relations()
            .find(dbproxy_model::Db::Master, 1, 2)
            .await
            .unwrap(),
        Some(2)
    );
    // The originals are hidden, not deleted.
    assert_eq!(
        env.count_sql("SELECT COUNT(*) AS n FROM IMMessage_1 WHERE status = 1")
            .await,
        2
    );
    assert_eq!(
        env.count_sql("SELECT COUNT(*) AS n FROM IMRelationShip WHERE id = 1 AND status = 1")
            .await,
        1
    );

    // One visible session, with the latest time.
    assert_eq!(
        env.count_sql("SELECT COUNT(*) AS n FROM IMRecentSession WHERE status = 0")
            .await,
        1
    );
    assert_eq!(
        env.count_sql("SELECT COUNT(*) AS n FROM IMRecentSession WHERE id = 3 AND updated = 20")
            .await,
        1
    );

    // Relation 10: every message kept, msgIds distinct, counter at the top.
    let mut ids: Vec<(u32, Vec<u8>)> = s
        .messages()
        .list_single(10, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.msg_id, m.content))
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 5);
    let msg_ids: Vec<u32> = ids.iter().map(|(i, _)| *i).collect();
    assert_eq!(msg_ids, vec![5, 6, 7, 8, 9], "{ids:?}");
    assert_eq!(
        ids[0].1, b"five a",
        "the first of a duplicated msgId keeps it"
    );
    assert_eq!(
        s.unread()
            .get(&single_counter_key(10))
            .await
            .unwrap()
            .as_deref(),
        Some("9")
    );
    assert_eq!(
        s.unread()
            .get(&group_counter_key(11))
            .await
            .unwrap()
            .as_deref(),
        Some("4")
    );
    // A send continues above the stored ids.
    assert_eq!(s.messages().allocate_single(10).await.unwrap(), 10);

    // The member hash is back.
    let hash = s.group_member().hgetall(&member_key(12)).await.unwrap();
    assert_eq!(hash.get("7").map(String::as_str), Some("50"));

    // A second repair finds nothing to change.
    assert!(s.doctor().repair().await.unwrap().is_empty());
    env.cleanup().await;
}
