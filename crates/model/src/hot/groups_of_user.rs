//! The coalesced group lists: the groups of concurrent users from one slave statement.

use std::sync::Arc;

use diesel_async::RunQueryDsl;

use crate::batch::texts::BucketTexts;
use crate::batch::timing::Timings;
use crate::batch::{fan_out, Coalescer, Shape};
use crate::db::sql::CacheExt;
use crate::db::{Db, Pools};
use crate::error::MysqlResultExt;

/// `SELECT userId, groupId ... WHERE status = 0 AND userId IN (?, ...)` for `n` users.
fn groups_of_users_sql(n: usize) -> String {
    let mut sql =
        String::from("SELECT userId, groupId FROM IMGroupMember WHERE status = 0 AND userId IN (?");
    for _ in 1..n {
        sql.push_str(", ?");
    }
    sql.push_str(") ORDER BY userId, updated DESC, id DESC");
    sql
}

#[derive(diesel::QueryableByName)]
struct MemberRow {
    #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::Integer>)]
    #[diesel(column_name = "userId")]
    user_id: u32,
    #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::Integer>)]
    #[diesel(column_name = "groupId")]
    group_id: u32,
}

/// Coalescer behind `Groups::group_ids_of_user`: the group lists of concurrent calls
/// (unread counts, mostly) come from one slave statement, an `IN` list of the users padded to
/// a fixed size so the text stays prepared. Reads `IMGroupMember`.
pub(crate) fn coalescer(pools: Pools, shape: Shape, timings: &Timings) -> Coalescer<u32, Vec<u32>> {
    let texts = Arc::new(BucketTexts::new(groups_of_users_sql));
    Coalescer::spawn("groups_of_user", shape, timings, move |users: Vec<u32>| {
        let pools = pools.clone();
        let texts = texts.clone();
        async move {
            let n = users.len();
            let outcome = pools
                .run(Db::Slave, false, async |c| {
                    let (sql, size) = texts.for_len(n);
                    let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
                    for i in 0..size {
                        let u = users.get(i).or(users.last()).copied().unwrap_or(0);
                        q = q.bind::<diesel::sql_types::Unsigned<diesel::sql_types::Integer>, _>(u);
                    }
                    let rows: Vec<MemberRow> = q
                        .cached()
                        .load(c)
                        .await
                        .ctx("IMGroupMember groups of users (batch)")?;
                    Ok(users
                        .iter()
                        .map(|&u| {
                            rows.iter()
                                .filter(|r| r.user_id == u)
                                .map(|r| r.group_id)
                                .collect()
                        })
                        .collect())
                })
                .await;
            fan_out(n, outcome)
        }
    })
}
