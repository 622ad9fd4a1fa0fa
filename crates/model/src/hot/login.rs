//! The coalesced login lookup: the accounts of concurrent logins from one slave statement.

use std::sync::Arc;

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::batch::texts::{tagged_union, BucketTexts};
use crate::batch::timing::Timings;
use crate::batch::{fan_out, Coalescer, Shape};
use crate::db::sql::CacheExt;
use crate::db::{Db, Pools};
use crate::error::MysqlResultExt;
use crate::repo::user::{User, UserRow};

/// One row of the batched login lookup: the request's index and its account.
#[derive(QueryableByName)]
struct TaggedUserRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    k: Option<i64>,
    #[diesel(embed)]
    user: UserRow,
}

const LOGIN_COLUMNS: &str = "id, sex, name, domain, nick, password, salt, phone, email, avatar, \
     departId AS depart_id, status, created, updated, push_shield_status, sign_info";

/// The batched login lookup for `n` distinct names (`2n` markers: the names for the CASE,
/// then for the IN list): every active row of any of them, tagged with the first name it
/// equals. Both comparisons are `name = ?` with a parameter, i.e. by the column's collation,
/// as the single lookup. One statement with one index range per name: far less MariaDB CPU
/// than a `UNION ALL` of per-name parts (BENCHMARKS.md, "logins in one statement").
fn login_sql(n: usize) -> String {
    let case: String = (0..n).map(|k| format!(" WHEN name = ? THEN {k}")).collect();
    let marks = vec!["?"; n].join(", ");
    format!(
        "SELECT CAST(CASE{case} END AS SIGNED) AS k, {LOGIN_COLUMNS} FROM IMUser \
         WHERE name IN ({marks}) AND status = 0"
    )
}

/// Per-name part of the fallback lookup: the newest active row of that name.
fn login_part() -> String {
    format!(
        "SELECT CAST({{k}} AS SIGNED) AS k, {LOGIN_COLUMNS} FROM IMUser \
         WHERE name = ? AND status = 0 ORDER BY id DESC LIMIT 1"
    )
}

/// Coalescer behind `Users::find_for_login`: concurrent logins share one slave statement
/// ([`login_sql`], padded to a fixed size so the text stays prepared); per name the row with
/// the highest id wins, as in the single lookup. A row equal to two names of the batch under
/// the collation (`Bob` and `bob` with a case-insensitive one, `bob` and `bob ` with PAD
/// SPACE) is tagged with the first only; names left without a row are therefore looked up
/// again in the same unit of work, one `UNION ALL` part each with the single lookup's own
/// text, so every caller gets what a lookup of its own would have returned.
pub(crate) fn coalescer(
    pools: Pools,
    shape: Shape,
    timings: &Timings,
) -> Coalescer<String, Option<User>> {
    let texts = Arc::new(BucketTexts::new(login_sql));
    let parts = Arc::new(BucketTexts::new(|n| tagged_union(&login_part(), n)));
    Coalescer::spawn("login", shape, timings, move |names: Vec<String>| {
        let pools = pools.clone();
        let texts = texts.clone();
        let parts = parts.clone();
        async move {
            let n = names.len();
            let outcome = pools
                .run(Db::Slave, false, async |c| {
                    // Distinct names (by bytes); each request reads its name's answer.
                    let mut distinct: Vec<&str> = Vec::with_capacity(n);
                    let at: Vec<usize> = names
                        .iter()
                        .map(
                            |name| match distinct.iter().position(|d| *d == name.as_str()) {
                                Some(i) => i,
                                None => {
                                    distinct.push(name.as_str());
                                    distinct.len() - 1
                                }
                            },
                        )
                        .collect();
                    let (sql, size) = texts.for_len(distinct.len());
                    let pad = |i: usize| distinct.get(i).or(distinct.last()).copied().unwrap_or("");
                    let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
                    for _ in 0..2 {
                        for i in 0..size {
                            q = q.bind::<diesel::sql_types::Varchar, _>(pad(i).to_owned());
                        }
                    }
                    let rows: Vec<TaggedUserRow> =
                        q.cached().load(c).await.ctx("IMUser by name (batch)")?;
                    let mut found: Vec<Option<UserRow>> = distinct.iter().map(|_| None).collect();
                    for r in rows {
                        let slot =
                            r.k.and_then(|k| usize::try_from(k).ok())
                                .and_then(|k| found.get_mut(k));
                        if let Some(slot) = slot {
                            if slot.as_ref().is_none_or(|have| have.id < r.user.id) {
                                *slot = Some(r.user);
                            }
                        }
                    }
                    // Names whose rows were all tagged with an equal earlier name (or that
                    // have none): the single lookup's text, all in one statement.
                    let missing: Vec<usize> = (0..distinct.len())
                        .filter(|&i| found[i].is_none())
                        .collect();
                    if !missing.is_empty() && missing.len() < distinct.len() {
                        let (sql, size) = parts.for_len(missing.len());
                        let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
                        for i in 0..size {
                            let d = missing.get(i).or(missing.last()).copied().unwrap_or(0);
                            q = q.bind::<diesel::sql_types::Varchar, _>(distinct[d].to_owned());
                        }
                        let again: Vec<TaggedUserRow> = q
                            .cached()
                            .load(c)
                            .await
                            .ctx("IMUser by name (batch, again)")?;
                        for r in again {
                            let d =
                                r.k.and_then(|k| usize::try_from(k).ok())
                                    .and_then(|k| missing.get(k));
                            if let Some(&d) = d {
                                found[d] = Some(r.user);
                            }
                        }
                    }
                    let users: Vec<Option<User>> =
                        found.into_iter().map(|r| r.map(User::from)).collect();
                    Ok(at.iter().map(|&d| users[d].clone()).collect())
                })
                .await;
            fan_out(n, outcome)
        }
    })
}
