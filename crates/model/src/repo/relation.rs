//! IMRelationShip: the user pair → relateId mapping (docs/compatibility.md#relation-lookup).
//!
//! Reads/writes table `IMRelationShip` (columns smallId, bigId, status, created, updated).

use std::collections::HashMap;

use diesel::sql_types::{Integer, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::batch::texts::{pair_markers, BucketTexts};
use crate::db::lock::{relation_lock, with_lock};
use crate::db::sql::{last_insert_id, CacheExt};
use crate::db::{unix_now, DbConn, DbPool};
use crate::error::{MysqlResultExt, Result};

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Integer)]
    id: i32,
}

/// `(smallId, bigId)` of two users, `None` when either is 0.
pub(crate) fn pair(a: u32, b: u32) -> Option<(u32, u32)> {
    if a == 0 || b == 0 {
        None
    } else {
        Some((a.min(b), a.max(b)))
    }
}

fn to_id(id: i32) -> Option<u32> {
    u32::try_from(id).ok().filter(|&v| v != 0)
}

/// Active relation id (status 0) of the pair {a, b}; `None` when a or b is 0 (no
/// statement) or no row exists. Several rows → the newest (highest id) wins ("last row" of
/// the original). Reads `IMRelationShip`.
pub(crate) async fn find(pool: &mut DbPool<'_>, a: u32, b: u32) -> Result<Option<u32>> {
    let Some((small, big)) = pair(a, b) else {
        return Ok(None);
    };
    let row: Option<IdRow> = pool
        .run(async |c| {
            diesel::sql_query(
                "SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ? AND status = 0 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind::<Unsigned<Integer>, _>(small)
            .bind::<Unsigned<Integer>, _>(big)
            .cached()
            .get_results::<IdRow>(c)
            .await
            .map(|mut v| v.pop())
            .ctx("IMRelationShip find")
        })
        .await?;
    Ok(row.and_then(|r| to_id(r.id)))
}

/// Relation id of each `(smallId, bigId)` pair.
pub(crate) type PairIds = HashMap<(u32, u32), u32>;

/// Active relation (status 0, newest row) of each `(smallId, bigId)` pair, keyed by the
/// pair. Reads `IMRelationShip`: one statement per 128 pairs, a row-constructor `IN` list
/// of bound pairs ([`pair_markers`]) padded to a fixed size so the text stays prepared.
pub(crate) async fn find_pairs(pool: &mut DbPool<'_>, pairs: &[(u32, u32)]) -> Result<PairIds> {
    let mut pairs: Vec<(u32, u32)> = pairs.to_vec();
    pairs.sort_unstable();
    pairs.dedup();
    pool.run(async |c| {
        let mut out = HashMap::with_capacity(pairs.len());
        for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
            let Some(&last) = chunk.last() else {
                continue;
            };
            let (sql, size) = PAIRS_TEXTS.for_len(chunk.len());
            let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
            for i in 0..size {
                let (small, big) = chunk.get(i).copied().unwrap_or(last);
                q = q
                    .bind::<Unsigned<Integer>, _>(small)
                    .bind::<Unsigned<Integer>, _>(big);
            }
            let rows: Vec<PairRow> = q.cached().load(c).await.ctx("IMRelationShip find many")?;
            for r in rows {
                if let Some(id) = to_id(r.id) {
                    out.insert((r.small_id, r.big_id), id);
                }
            }
        }
        Ok(out)
    })
    .await
}

/// Statement sizes of [`find_pairs`]. A batch of unread counts asks for the relations of
/// 16 users' sessions: one statement of 96 pairs costs MariaDB less CPU than three of 32
/// (BENCHMARKS.md), and saves two round trips.
const PAIRS_SIZES: [usize; 10] = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128];
const PAIRS_PER_STATEMENT: usize = PAIRS_SIZES[PAIRS_SIZES.len() - 1];

static PAIRS_TEXTS: std::sync::LazyLock<BucketTexts> =
    std::sync::LazyLock::new(|| BucketTexts::with_sizes(&PAIRS_SIZES, pairs_sql));

fn pairs_sql(n: usize) -> String {
    format!(
        "SELECT smallId, bigId, MAX(id) AS id FROM IMRelationShip WHERE status = 0 \
         AND (smallId, bigId) IN ({}) GROUP BY smallId, bigId",
        pair_markers(n)
    )
}

#[derive(QueryableByName)]
struct PairRow {
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "smallId")]
    small_id: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "bigId")]
    big_id: u32,
    #[diesel(sql_type = Integer)]
    id: i32,
}

/// Create or reactivate the relation of `(small, big)` under its advisory lock
/// (`dbproxy_rel_<small>_<big>`), re-checked inside the lock: `status = 0, updated = now` on
/// the first existing row (any status), or a new row (small, big, 0, now, now). Returns the
/// id and whether a row was inserted. Give it a master pool.
pub(crate) async fn create(pool: &mut DbPool<'_>, small: u32, big: u32) -> Result<(u32, bool)> {
    let lock = relation_lock(small, big);
    pool.run(async |c| {
        with_lock(c, &lock, async |c: &mut DbConn| {
            create_locked(c, small, big).await
        })
        .await
    })
    .await
}

async fn create_locked(c: &mut DbConn, small: u32, big: u32) -> Result<(u32, bool)> {
    let now = unix_now();
    let existing: Vec<IdRow> = diesel::sql_query(
        "SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ? ORDER BY id ASC LIMIT 1",
    )
    .bind::<Unsigned<Integer>, _>(small)
    .bind::<Unsigned<Integer>, _>(big)
    .cached()
    .load(c)
    .await
    .ctx("IMRelationShip find (master)")?;
    if let Some(id) = existing.into_iter().next().and_then(|r| to_id(r.id)) {
        diesel::sql_query("UPDATE IMRelationShip SET status = 0, updated = ? WHERE id = ?")
            .bind::<Unsigned<Integer>, _>(now)
            .bind::<Unsigned<Integer>, _>(id)
            .cached()
            .execute(c)
            .await
            .ctx("IMRelationShip reactivate")?;
        return Ok((id, false));
    }
    diesel::sql_query(
        "INSERT INTO IMRelationShip (smallId, bigId, status, created, updated) VALUES (?, ?, 0, ?, ?)",
    )
    .bind::<Unsigned<Integer>, _>(small)
    .bind::<Unsigned<Integer>, _>(big)
    .bind::<Unsigned<Integer>, _>(now)
    .bind::<Unsigned<Integer>, _>(now)
    .cached()
    .execute(c)
    .await
    .ctx("IMRelationShip insert")?;
    let id = last_insert_id(c).await?;
    Ok((id, true))
}
