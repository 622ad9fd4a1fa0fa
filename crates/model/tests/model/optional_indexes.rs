//! sql/optional/read_indexes.sql: applies to the project schema, and the reads it serves
//! answer exactly as without it.

use dbproxy_model::group::NewGroup;
use dbproxy_model::{session, Store};
use dbproxy_testkit::TestEnv;

const OPTIONAL: &str = include_str!("../../../../sql/optional/read_indexes.sql");

/// The file's statements (comment lines dropped, split at a `;` ending a line).
fn statements() -> Vec<&'static str> {
    OPTIONAL
        .split(";\n")
        .map(str::trim)
        .filter(|s| {
            s.lines()
                .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
        })
        .collect()
}

async fn reads(store: &Store, user: u32) -> (Vec<(u32, u8, u32)>, Vec<u32>) {
    let sessions = store
        .sessions()
        .recent(user, 0)
        .await
        .expect("recent")
        .into_iter()
        .map(|s| (s.peer_id, s.kind, s.updated))
        .collect();
    let groups = store
        .groups()
        .group_ids_of_user(user)
        .await
        .expect("groups");
    (sessions, groups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_read_indexes_change_no_answer() {
    let env = TestEnv::new().await;
    let store = &env.store;
    let user = 7;
    // 130 sessions (more than the 100 a reply holds), updated out of insertion order.
    for peer in 1..=130u32 {
        let id = store
            .sessions()
            .add(user, 1000 + peer, session::SINGLE)
            .await
            .expect("session");
        store
            .sessions()
            .update(id, 1_000_000 + (peer * 37) % 131)
            .await
            .expect("update");
    }
    for n in 0..12u32 {
        let group = NewGroup {
            name: format!("g{n}"),
            avatar: String::new(),
            creator: user,
            group_type: 1,
        };
        store
            .groups()
            .create(&group, &[user, 2000 + n], 1_000 + (n * 5) % 7)
            .await
            .expect("group");
    }
    let before = reads(store, user).await;
    assert_eq!(before.0.len(), 100);
    assert_eq!(before.1.len(), 12);

    // IMGroupMember has an index of the first name already; the file adds one there and
    // one to IMRecentSession.
    let count = "SELECT COUNT(*) AS n FROM information_schema.statistics WHERE table_schema = \
                 DATABASE() AND index_name IN ('idx_userId_status_updated', \
                 'idx_userId_status_updated_groupId') AND seq_in_index = 1";
    assert_eq!(env.query_i64s(count).await, vec![1]);
    let list = statements();
    assert_eq!(list.len(), 2, "{list:?}");
    for sql in list {
        env.run_sql(sql).await;
    }
    assert_eq!(env.query_i64s(count).await, vec![3]);
    assert_eq!(reads(store, user).await, before);
    env.cleanup().await;
}
