//! Group repository against real MariaDB + a private Redis.

use dbproxy_model::group::NewGroup;
use dbproxy_model::keys::{group_counter_key, member_key};
use dbproxy_testkit::TestEnv;

const HOSTILE: &str = "' OR 1=1 -- \"q\" \\back\\ 😀🐉";

fn new_group(name: &str, creator: u32, group_type: u32) -> NewGroup {
    NewGroup {
        name: name.into(),
        avatar: format!("{name}.png"),
        creator,
        group_type,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_reads_back_and_lists() {
    let env = TestEnv::new().await;
    let groups = env.store.groups();
    let g = groups
        .create(&new_group(HOSTILE, 7, 1), &[9, 10, 9, 100, 2], 1000)
        .await
        .unwrap();
    assert!(g > 0);

    let rows = groups.by_ids(&[g, 424242]).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.name, HOSTILE);
    assert_eq!(row.avatar, format!("{HOSTILE}.png"));
    assert_eq!(
        (row.creator, row.group_type, row.status, row.version),
        (7, 1, 0, 1)
    );
    assert_eq!((row.last_chated, row.created, row.updated), (0, 1000, 1000));
    // Q-G03 fix: userCnt is the number of distinct members, not twice it.
    assert_eq!(row.user_cnt, 4);

    // Q-G08: lexicographic order of the decimal ids.
    assert_eq!(groups.members(g).await.unwrap(), vec![10, 100, 2, 9]);
    assert_eq!(
        groups.member_times(g).await.unwrap(),
        vec![(10, 1000), (100, 1000), (2, 1000), (9, 1000)]
    );
    assert!(groups.is_valid(g).await.unwrap());
    assert!(groups.is_member(9, g).await.unwrap());
    assert!(!groups.is_member(7, g).await.unwrap());
    assert_eq!(groups.join_time(9, g).await.unwrap(), 1000);
    assert_eq!(groups.join_time(7, g).await.unwrap(), 0);
    assert_eq!(
        env.store.unread().get(&group_counter_key(g)).await.unwrap(),
        Some("0".into())
    );

    assert_eq!(groups.group_ids_of_user(9).await.unwrap(), vec![g]);
    assert!(groups.group_ids_of_user(7).await.unwrap().is_empty());
    assert_eq!(groups.normal_versions(&[g]).await.unwrap(), vec![(g, 1)]);
    assert_eq!(groups.creator_and_type(g).await.unwrap(), Some((7, 1)));
    assert_eq!(groups.creator_and_type(424242).await.unwrap(), None);

    // A temporary group is not in the normal list.
    let t = groups
        .create(&new_group("tmp", 7, 2), &[9], 1001)
        .await
        .unwrap();
    assert_eq!(groups.normal_versions(&[g, t]).await.unwrap(), vec![(g, 1)]);
    assert_eq!(
        groups.group_ids_of_users(&[9, 2, 55]).await.unwrap(),
        vec![(2, g), (9, t), (9, g)]
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_inputs_and_unknown_ids() {
    let env = TestEnv::new().await;
    let groups = env.store.groups();
    assert!(groups.by_ids(&[]).await.unwrap().is_empty());
    assert!(groups.normal_versions(&[]).await.unwrap().is_empty());
    assert!(groups.group_ids_of_users(&[]).await.unwrap().is_empty());
    assert!(groups.push_shields(5, &[]).await.unwrap().is_empty());
    assert!(!groups.is_valid(0).await.unwrap());
    assert!(!groups.is_valid(999).await.unwrap());
    assert!(!groups.is_member(1, 999).await.unwrap());
    assert!(groups.members(999).await.unwrap().is_empty());
    assert!(groups.insert_members(999, &[], 1).await.unwrap().is_empty());
    assert!(groups.insert_members(0, &[1], 1).await.unwrap().is_empty());
    groups.remove_members(999, &[]).await.unwrap();
    assert!(!groups.bump_version(999).await.unwrap());
    assert!(groups.chatted_since(0).await.unwrap().is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_remove_version_and_usercnt() {
    let env = TestEnv::new().await;
    let groups = env.store.groups();
    let g = groups
        .create(&new_group("g", 1, 1), &[1, 2, 3], 100)
        .await
        .unwrap();
    assert_eq!(
        groups.remove_members(g, &[2, 3, 3]).await.unwrap(),
        vec![2, 3]
    );
    assert_eq!(groups.members(g).await.unwrap(), vec![1]);
    assert_eq!(groups.by_ids(&[g]).await.unwrap()[0].user_cnt, 1);
    // Re-add: the row is reactivated, not duplicated; join time is the new time (Q-G07).
    assert_eq!(
        groups.insert_members(g, &[3, 4], 200).await.unwrap(),
        vec![3, 4]
    );
    assert_eq!(groups.members(g).await.unwrap(), vec![1, 3, 4]);
    assert_eq!(groups.join_time(3, g).await.unwrap(), 200);
    assert_eq!(
        groups.member_rows(g).await.unwrap(),
        vec![(1, 0), (2, 1), (3, 0), (4, 0)]
    );
    assert_eq!(groups.by_ids(&[g]).await.unwrap()[0].user_cnt, 3);
    assert!(groups.bump_version(g).await.unwrap());
    assert!(groups.bump_version(g).await.unwrap());
    assert_eq!(groups.by_ids(&[g]).await.unwrap()[0].version, 3);

    // Removing everyone: the hash disappears and the group stays invalid (no active member).
    assert_eq!(
        groups.remove_members(g, &[1, 3, 4, 9]).await.unwrap(),
        vec![1, 3, 4]
    );
    assert!(!groups.is_valid(g).await.unwrap());
    assert!(groups.members(g).await.unwrap().is_empty());
    // Q-R02 fix: members can be added again and the group is valid again.
    assert_eq!(groups.insert_members(g, &[5], 300).await.unwrap(), vec![5]);
    assert!(groups.is_valid(g).await.unwrap());
    assert_eq!(groups.members(g).await.unwrap(), vec![5]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_member_hash_is_rebuilt_from_mysql() {
    let env = TestEnv::new().await;
    let groups = env.store.groups();
    let g = groups
        .create(&new_group("g", 1, 1), &[11, 12], 100)
        .await
        .unwrap();
    groups.insert_members(g, &[13], 150).await.unwrap();
    groups.remove_members(g, &[12]).await.unwrap();
    let key = member_key(g);

    // Redis loses the hash (flush): every read path rebuilds it.
    env.store.group_member().del(&[key.as_str()]).await.unwrap();
    assert!(groups.is_valid(g).await.unwrap());
    assert_eq!(
        groups.member_times(g).await.unwrap(),
        vec![(11, 100), (13, 150)]
    );

    env.store.group_member().del(&[key.as_str()]).await.unwrap();
    assert!(groups.is_member(13, g).await.unwrap());
    env.store.group_member().del(&[key.as_str()]).await.unwrap();
    assert_eq!(groups.join_time(11, g).await.unwrap(), 100);
    env.store.group_member().del(&[key.as_str()]).await.unwrap();
    assert_eq!(groups.members(g).await.unwrap(), vec![11, 13]);

    // Adding while the hash is missing keeps the other active members too.
    env.store.group_member().del(&[key.as_str()]).await.unwrap();
    groups.insert_members(g, &[14], 200).await.unwrap();
    assert_eq!(
        env.store.group_member().hgetall(&key).await.unwrap().len(),
        3
    );

    // Concurrent readers of a missing hash: one consistent rebuild.
    env.store.group_member().del(&[key.as_str()]).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            store.groups().members(g).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), vec![11, 13, 14]);
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_create_no_duplicate_rows() {
    let env = TestEnv::new().await;
    let groups = env.store.groups();
    let g = groups
        .create(&new_group("g", 1, 2), &[1], 100)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            store.groups().insert_members(g, &[2, 3, 4], 200).await
        }));
    }
    let mut changed = Vec::new();
    for t in tasks {
        let added = t.await.unwrap().unwrap();
        if !added.is_empty() {
            changed.push(added);
        }
    }
    // Exactly one add changed the membership; the others found the users there already.
    assert_eq!(changed, vec![vec![2, 3, 4]]);
    let rows = groups.member_rows(g).await.unwrap();
    assert_eq!(rows, vec![(1, 0), (2, 0), (3, 0), (4, 0)]);
    // An add of members already there changes nothing, not even the join time.
    assert!(groups
        .insert_members(g, &[2], 999)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(groups.join_time(2, g).await.unwrap(), 200);
    assert_eq!(groups.by_ids(&[g]).await.unwrap()[0].user_cnt, 4);
    assert_eq!(groups.members(g).await.unwrap(), vec![1, 2, 3, 4]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_shield_and_sync_scan() {
    let env = TestEnv::new().await;
    let groups = env.store.groups();
    let g = groups
        .create(&new_group("g", 1, 1), &[1, 2], 100)
        .await
        .unwrap();
    groups.set_push_shield(g, 1, 1).await.unwrap();
    groups.set_push_shield(g, 2, 7).await.unwrap();
    groups.set_push_shield(g, 2, 0).await.unwrap();
    assert_eq!(
        groups.push_shields(g, &[1, 2, 3, 1]).await.unwrap(),
        vec![(1, 1), (2, 0), (3, 0), (1, 1)]
    );
    assert_eq!(
        env.store
            .group_set()
            .hget(&format!("group_set_{g}"), "1_1")
            .await
            .unwrap(),
        Some("1".into())
    );

    let h = groups
        .create(&new_group("h", 1, 1), &[1], 100)
        .await
        .unwrap();
    assert!(groups.chatted_since(0).await.unwrap().is_empty());
    assert!(groups.set_last_chated(g, 500).await.unwrap());
    assert!(groups.set_last_chated(h, 600).await.unwrap());
    assert_eq!(
        groups.chatted_since(0).await.unwrap(),
        vec![(g, 500), (h, 600)]
    );
    assert_eq!(groups.chatted_since(501).await.unwrap(), vec![(h, 600)]);
    assert_eq!(groups.chatted_since(600).await.unwrap(), vec![(h, 600)]);
    assert!(groups.chatted_since(601).await.unwrap().is_empty());
    env.cleanup().await;
}

/// A member whose row is active but who is missing from the hash (an add whose HSET failed
/// after its commit) is written back by the next add, with its join time, and counts as
/// joined; one whose row is inactive but who is still in the hash is removed by the next
/// removal and counts as removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_and_removals_repair_the_member_hash() {
    let env = TestEnv::new().await;
    let groups = env.store.groups();
    let g = groups
        .create(&new_group("g", 1, 1), &[1, 2], 100)
        .await
        .unwrap();
    let key = member_key(g);
    let hashes = env.store.group_member();
    hashes.hdel(&key, &["2"]).await.unwrap();
    assert_eq!(
        groups.insert_members(g, &[2, 3], 200).await.unwrap(),
        vec![2, 3]
    );
    assert_eq!(groups.join_time(2, g).await.unwrap(), 100, "join time kept");
    assert_eq!(groups.join_time(3, g).await.unwrap(), 200);
    assert!(groups
        .insert_members(g, &[2, 3], 300)
        .await
        .unwrap()
        .is_empty());

    env.run_sql("UPDATE IMGroupMember SET status = 1 WHERE userId = 3")
        .await;
    assert_eq!(groups.remove_members(g, &[3]).await.unwrap(), vec![3]);
    assert_eq!(groups.members(g).await.unwrap(), vec![1, 2]);
    assert!(groups.remove_members(g, &[3]).await.unwrap().is_empty());
    env.cleanup().await;
}
