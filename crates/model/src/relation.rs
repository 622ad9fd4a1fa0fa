//! IMRelationShip: the user pair → relateId mapping (behaviour.md §10.1).
//!
//! Reads/writes table `IMRelationShip` (columns smallId, bigId, status, created, updated)
//! and, when a relation row is first inserted, Redis `unread` key `msg_id_<relateId>`
//! (set to `0` only if absent).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::sql_types::{Integer, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::error::{MysqlResultExt, Result};
use crate::named_lock::with_lock;
use crate::sql::CacheExt;
use crate::store::{unix_now, Db, DbConn, Store};

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

/// Redis key of the per-pair message id counter.
pub fn msg_id_key(relate_id: u32) -> String {
    format!("msg_id_{relate_id}")
}

/// Repository of IMRelationShip (user pair → relateId). Obtain with [`Store::relations`].
#[derive(Clone, Copy)]
pub struct Relations<'a> {
    store: &'a Store,
}

impl Store {
    /// IMRelationShip repository.
    pub fn relations(&self) -> Relations<'_> {
        Relations { store: self }
    }
}

impl Relations<'_> {
    /// Active relation id (status 0) of the pair {a, b}; `None` when a or b is 0 or no
    /// row exists. Several rows → the newest (highest id) wins ("last row" of the original).
    /// Reads `IMRelationShip` on `db`.
    pub async fn find(&self, db: Db, a: u32, b: u32) -> Result<Option<u32>> {
        if pair(a, b).is_none() {
            return Ok(None);
        }
        self.store.on(db, async |c| find_on(c, a, b).await).await
    }

    /// Relation id of {a, b}, creating or reactivating it when needed (§10.1 with Q-D04,
    /// Q-D05, Q-D06 fixed). Concurrency-safe without UNIQUE keys: creation is serialised by
    /// the advisory lock `dbproxy_rel_<small>_<big>` and re-checked on master.
    ///
    /// Reads `IMRelationShip` (slave fast path, then master); writes on master either
    /// `status = 0, updated = now` on the first existing row (any status) or a new row
    /// (small, big, 0, now, now). After an insert: SET NX `msg_id_<id>` `0` (unread instance;
    /// a Redis failure there is logged, not returned). The id is remembered for the batched
    /// reads (`StoreConfig::relation_ids_ttl`); this call itself always asks the tables.
    pub async fn get_or_create(&self, a: u32, b: u32) -> Result<Option<u32>> {
        let Some((small, big)) = pair(a, b) else {
            return Ok(None);
        };
        if let Some(id) = self.find(Db::Slave, a, b).await? {
            self.store.relation_ids().remember([((small, big), id)]);
            return Ok(Some(id));
        }
        let lock = format!("dbproxy_rel_{small}_{big}");
        let (id, inserted) = self
            .store
            .master(async |c| {
                with_lock(c, &lock, async |c: &mut DbConn| {
                    create_locked(c, small, big).await
                })
                .await
            })
            .await?;
        if inserted {
            if let Err(e) = self.store.unread().set_nx(&msg_id_key(id), "0").await {
                tracing::warn!(relate_id = id, error = %e, "SET NX msg_id key failed");
            }
        }
        self.store.relation_ids().remember([((small, big), id)]);
        Ok(Some(id))
    }
}

/// [`Relations::find`] on an existing connection (used to combine it with other reads in one unit
/// of work). Reads `IMRelationShip`.
pub async fn find_on(c: &mut DbConn, a: u32, b: u32) -> Result<Option<u32>> {
    let Some((small, big)) = pair(a, b) else {
        return Ok(None);
    };
    let row: Option<IdRow> = diesel::sql_query(
        "SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ? AND status = 0 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind::<Unsigned<Integer>, _>(small)
    .bind::<Unsigned<Integer>, _>(big)
    .cached()
    .get_results::<IdRow>(c)
    .await
    .map(|mut v| v.pop())
    .ctx("IMRelationShip find")?;
    Ok(row.and_then(|r| to_id(r.id)))
}

/// Active relation (status 0, newest row) of each `(smallId, bigId)` pair, keyed by the
/// pair, on an existing connection. Reads `IMRelationShip`: one statement per 128 pairs,
/// a row-constructor `IN` list of bound pairs ([`pair_markers`]) padded to a fixed size so
/// the text stays prepared.
pub(crate) async fn find_pairs_on(c: &mut DbConn, pairs: &[(u32, u32)]) -> Result<PairIds> {
    let mut pairs: Vec<(u32, u32)> = pairs.to_vec();
    pairs.sort_unstable();
    pairs.dedup();
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
}

/// Relation id of each `(smallId, bigId)` pair.
pub(crate) type PairIds = HashMap<(u32, u32), u32>;

/// Remembered relation ids and when each was read.
type Remembered = HashMap<(u32, u32), (u32, Instant)>;

/// Relation ids of user pairs this process read or created lately, kept for `ttl`: the
/// batched page and newest-message reads (fetches, unread counts, recent sessions) then
/// skip their `IMRelationShip` statement when every pair is known. A relation id, once
/// assigned, never changes, and db-proxy never removes a relation, so an entry can only be
/// stale when another program removes the row (status 1) or adds a second active row for the
/// pair; `ttl` bounds that, as replication lag bounds a read from the slave. Only found
/// relations are kept ("no relation" is always asked again). At most [`Self::MAX_ENTRIES`]
/// pairs; when full, expired entries are dropped, and everything if that leaves more than
/// three quarters of the bound.
pub(crate) struct RelationIds {
    ttl: Duration,
    known: std::sync::Mutex<Remembered>,
}

impl RelationIds {
    /// Bound on the remembered pairs (about 40 bytes each).
    pub(crate) const MAX_ENTRIES: usize = 16_384;

    /// Remember ids for `ttl`; a zero `ttl` remembers nothing.
    pub(crate) fn new(ttl: Duration) -> Self {
        RelationIds {
            ttl,
            known: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // The map is only a cache: a panic elsewhere while it was held leaves it usable.
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remember `(smallId, bigId) → id` pairs just read or written.
    pub(crate) fn remember(&self, found: impl IntoIterator<Item = ((u32, u32), u32)>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut known = self.lock();
        for (pair, id) in found {
            if known.len() >= Self::MAX_ENTRIES && !known.contains_key(&pair) {
                known.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
                // Room for a quarter of the bound at least, so that the sweep stays rare.
                if known.len() > Self::MAX_ENTRIES / 4 * 3 {
                    known.clear();
                }
            }
            known.insert(pair, (id, now));
        }
    }

    /// The remembered ids of `pairs` still within `ttl`, and the pairs to look up.
    pub(crate) fn split(&self, pairs: &[(u32, u32)]) -> (PairIds, Vec<(u32, u32)>) {
        let mut known_ids = HashMap::with_capacity(pairs.len());
        let mut missing = Vec::new();
        let now = Instant::now();
        let known = self.lock();
        for &pair in pairs {
            match known.get(&pair) {
                Some(&(id, at)) if now.duration_since(at) < self.ttl => {
                    known_ids.insert(pair, id);
                }
                _ => missing.push(pair),
            }
        }
        (known_ids, missing)
    }

    /// [`find_pairs_on`] for the pairs not remembered (none: no statement), merged with the
    /// remembered ones; what the statement found is remembered.
    pub(crate) async fn find_pairs_on(
        &self,
        c: &mut DbConn,
        pairs: &[(u32, u32)],
    ) -> Result<PairIds> {
        let (mut out, missing) = self.split(pairs);
        if !missing.is_empty() {
            let found = find_pairs_on(c, &missing).await?;
            self.remember(found.iter().map(|(&k, &v)| (k, v)));
            out.extend(found);
        }
        Ok(out)
    }
}

/// Statement sizes of [`find_pairs_on`]. A batch of unread counts asks for the relations of
/// 16 users' sessions (~80 pairs in the bench): one statement of 96 pairs costs MariaDB about
/// a quarter less CPU than three of 32 (measured with prepared statements), and saves two
/// round trips.
const PAIRS_SIZES: [usize; 10] = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128];
const PAIRS_PER_STATEMENT: usize = PAIRS_SIZES[PAIRS_SIZES.len() - 1];

static PAIRS_TEXTS: std::sync::LazyLock<crate::batch::BucketTexts> =
    std::sync::LazyLock::new(|| crate::batch::BucketTexts::with_sizes(&PAIRS_SIZES, pairs_sql));

/// `(?, ?), (?, ?), …` with `n` pairs: the list of a row-constructor `IN`, which MariaDB
/// turns into the same index ranges as an OR list of `(a = ? AND b = ?)` for about a
/// quarter less CPU (NOT NULL columns, so both mean the same).
pub(crate) fn pair_markers(n: usize) -> String {
    let mut s = String::with_capacity(n * 8);
    for i in 0..n {
        s.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
    }
    s
}

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
    let id = crate::sql::last_insert_id(c).await?;
    Ok((id, true))
}

#[cfg(test)]
mod tests {
    use super::RelationIds;
    use std::time::Duration;

    #[test]
    fn remembered_ids_expire_and_unknown_pairs_are_asked() {
        let ids = RelationIds::new(Duration::from_millis(50));
        ids.remember([((1, 2), 7), ((3, 4), 9)]);
        let (known, missing) = ids.split(&[(1, 2), (5, 6), (3, 4)]);
        assert_eq!(known.len(), 2);
        assert_eq!(known.get(&(1, 2)), Some(&7));
        assert_eq!(known.get(&(3, 4)), Some(&9));
        assert_eq!(missing, vec![(5, 6)]);
        std::thread::sleep(Duration::from_millis(60));
        let (known, missing) = ids.split(&[(1, 2), (3, 4)]);
        assert!(known.is_empty());
        assert_eq!(missing, vec![(1, 2), (3, 4)]);
    }

    #[test]
    fn zero_ttl_remembers_nothing() {
        let ids = RelationIds::new(Duration::ZERO);
        ids.remember([((1, 2), 7)]);
        let (known, missing) = ids.split(&[(1, 2)]);
        assert!(known.is_empty());
        assert_eq!(missing, vec![(1, 2)]);
    }

    #[test]
    fn the_map_stays_bounded() {
        let ids = RelationIds::new(Duration::from_secs(60));
        let n = u32::try_from(RelationIds::MAX_ENTRIES).unwrap_or(u32::MAX);
        ids.remember((0..n + 10).map(|i| ((i, i + 1), i + 100)));
        let size = ids.lock().len();
        assert!(size <= RelationIds::MAX_ENTRIES, "{size} entries");
        // The newest pair is always kept.
        let (known, _) = ids.split(&[(n + 9, n + 10)]);
        assert_eq!(known.get(&(n + 9, n + 10)), Some(&(n + 109)));
    }

    #[test]
    fn a_full_map_drops_expired_entries_first() {
        let ids = RelationIds::new(Duration::from_millis(50));
        let n = u32::try_from(RelationIds::MAX_ENTRIES).unwrap_or(u32::MAX);
        ids.remember((0..n - 1).map(|i| ((i, i + 1), i)));
        std::thread::sleep(Duration::from_millis(60));
        ids.remember([((n, n + 1), 1), ((n + 1, n + 2), 2)]);
        assert_eq!(ids.lock().len(), 2);
        let (known, missing) = ids.split(&[(n, n + 1), (n + 1, n + 2), (0, 1)]);
        assert_eq!(known.len(), 2);
        assert_eq!(missing, vec![(0, 1)]);
    }
}
