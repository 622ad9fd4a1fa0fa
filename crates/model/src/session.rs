//! IMRecentSession: per-user conversation list (behaviour.md §10.2–§10.4, §11.4).
//!
//! Reads/writes table `IMRecentSession` only (userId, peerId, type, status, created,
//! updated). Session type 1 = single, 2 = group.

use diesel::sql_types::{Integer, Nullable, TinyInt, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::error::{MysqlResultExt, Result};
use crate::named_lock::with_lock;
use crate::sql::last_insert_id;
use crate::sql::CacheExt;
use crate::store::{unix_now, Db, DbConn, Store};

/// Session type: single chat.
pub const SINGLE: u8 = 1;
/// Session type: group chat.
pub const GROUP: u8 = 2;

/// Maximum rows returned by [`Sessions::recent`].
pub const RECENT_LIMIT: u32 = 100;

/// One IMRecentSession row (NULL type/status read as 0, Q-D03).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: u32,
    pub user_id: u32,
    pub peer_id: u32,
    /// 1 single, 2 group (other values may exist in old data).
    pub kind: u8,
    /// 0 visible, 1 deleted by the owner.
    pub status: u8,
    pub created: u32,
    pub updated: u32,
}

#[derive(QueryableByName)]
struct SessionRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "userId")]
    user_id: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "peerId")]
    peer_id: u32,
    #[diesel(sql_type = Nullable<Unsigned<TinyInt>>)]
    #[diesel(column_name = "type")]
    kind: Option<u8>,
    #[diesel(sql_type = Nullable<Unsigned<TinyInt>>)]
    status: Option<u8>,
    #[diesel(sql_type = Unsigned<Integer>)]
    created: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    updated: u32,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Integer)]
    id: i32,
}

fn to_id(id: i32) -> Option<u32> {
    u32::try_from(id).ok().filter(|&v| v != 0)
}

async fn find_on(
    c: &mut DbConn,
    user: u32,
    peer: u32,
    kind: u8,
    any_status: bool,
) -> Result<Option<u32>> {
    let sql = if any_status {
        "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
         ORDER BY id DESC LIMIT 1"
    } else {
        "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
         AND status = 0 ORDER BY id DESC LIMIT 1"
    };
    let rows: Vec<IdRow> = diesel::sql_query(sql)
        .bind::<Unsigned<Integer>, _>(user)
        .bind::<Unsigned<Integer>, _>(peer)
        .bind::<Unsigned<TinyInt>, _>(kind)
        .cached()
        .load(c)
        .await
        .ctx("IMRecentSession find")?;
    Ok(rows.into_iter().next().and_then(|r| to_id(r.id)))
}

/// Repository of IMRecentSession. Obtain with [`Store::sessions`].
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    store: &'a Store,
}

impl Store {
    /// IMRecentSession repository.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { store: self }
    }
}

impl Sessions<'_> {
    /// Session id of (user, peer, kind) — visible ones only unless `any_status`; the newest
    /// row wins when there are duplicates. Reads `IMRecentSession` on `db` (use
    /// [`Db::Master`] right before a write, Q-D06).
    pub async fn find(
        &self,
        db: Db,
        user: u32,
        peer: u32,
        kind: u8,
        any_status: bool,
    ) -> Result<Option<u32>> {
        self.store
            .on(db, async |c| find_on(c, user, peer, kind, any_status).await)
            .await
    }

    /// addSession (§10.3): reactivate the existing (user, peer, kind) row (`status = 0,
    /// updated = now`) or insert (user, peer, kind, 0, now, now). Returns the session id.
    /// Concurrency-safe without UNIQUE keys (advisory lock `dbproxy_ses_<u>_<p>_<k>`,
    /// lookup on master). Reads/writes `IMRecentSession` on master.
    pub async fn add(&self, user: u32, peer: u32, kind: u8) -> Result<u32> {
        let lock = format!("dbproxy_ses_{user}_{peer}_{kind}");
        self.store
            .master(async |c| {
                with_lock(c, &lock, async |c: &mut DbConn| {
                    let now = unix_now();
                    if let Some(id) = find_on(c, user, peer, kind, true).await? {
                        diesel::sql_query(
                            "UPDATE IMRecentSession SET status = 0, updated = ? WHERE id = ?",
                        )
                        .bind::<Unsigned<Integer>, _>(now)
                        .bind::<Unsigned<Integer>, _>(id)
                        .cached()
                        .execute(c)
                        .await
                        .ctx("IMRecentSession reactivate")?;
                        return Ok(id);
                    }
                    diesel::sql_query(
                        "INSERT INTO IMRecentSession \
                         (userId, peerId, type, status, created, updated) \
                         VALUES (?, ?, ?, 0, ?, ?)",
                    )
                    .bind::<Unsigned<Integer>, _>(user)
                    .bind::<Unsigned<Integer>, _>(peer)
                    .bind::<Unsigned<TinyInt>, _>(kind)
                    .bind::<Unsigned<Integer>, _>(now)
                    .bind::<Unsigned<Integer>, _>(now)
                    .cached()
                    .execute(c)
                    .await
                    .ctx("IMRecentSession insert")?;
                    last_insert_id(c).await
                })
                .await
            })
            .await
    }

    /// Visible session of (user, peer, kind), created/reactivated when missing:
    /// `find` on master, else [`Self::add`].
    pub async fn get_or_add(&self, user: u32, peer: u32, kind: u8) -> Result<u32> {
        match self.find(Db::Master, user, peer, kind, false).await? {
            Some(id) => Ok(id),
            None => self.add(user, peer, kind).await,
        }
    }

    /// Fast path of a single send: ONE master statement (Q-D06: reads right before the
    /// writes go to master), coalesced with concurrent sends, reads the visible type-1
    /// sessions of both sides (`IMRecentSession`, newest id per (userId, peerId)) and the
    /// active relation (`IMRelationShip`, newest id; not read when its id was read or created
    /// within `StoreConfig::relation_ids_ttl`). Missing pieces are `None`; the caller
    /// creates them with [`Self::add`] / [`crate::relation::Relations::get_or_create`]
    /// (the locked paths).
    /// `from == to` or a 0 id gives all `None`.
    pub async fn single_send_lookup(&self, from: u32, to: u32) -> Result<SendLookup> {
        if from == 0 || to == 0 || from == to {
            return Ok(SendLookup::default());
        }
        self.store.batches().send_lookup.call((from, to)).await
    }

    /// updateSession (§10.4): `updated = t` on row `id` (master). Returns whether a row
    /// matched (id 0 matches nothing).
    pub async fn update(&self, id: u32, t: u32) -> Result<bool> {
        if id == 0 {
            return Ok(false);
        }
        let n = self
            .store
            .master(async |c| update_on(c, id, t).await)
            .await?;
        Ok(n)
    }

    /// `updated = t` on every row of `ids` (0s ignored), one statement on master.
    /// Returns the number of rows matched.
    pub async fn bump(&self, ids: &[u32], t: u32) -> Result<usize> {
        if lock_order(ids).is_empty() {
            return Ok(0);
        }
        self.store.master(async |c| bump_on(c, ids, t).await).await
    }

    /// removeSession (§10.4): `status = 1, updated = now` on row `id` (master). Returns
    /// whether a row matched.
    pub async fn remove(&self, id: u32) -> Result<bool> {
        if id == 0 {
            return Ok(false);
        }
        let now = unix_now();
        let n = self
            .store
            .master(async |c| {
                diesel::sql_query("UPDATE IMRecentSession SET status = 1, updated = ? WHERE id = ?")
                    .bind::<Unsigned<Integer>, _>(now)
                    .bind::<Unsigned<Integer>, _>(id)
                    .cached()
                    .execute(c)
                    .await
                    .ctx("IMRecentSession remove")
            })
            .await?;
        Ok(n > 0)
    }

    /// Recent sessions of `user` (§11.4 step 1): status 0 and `updated > after`, newest first,
    /// at most 100. Reads `IMRecentSession` on slave. Rows of any type are returned; callers
    /// skip types other than 1 and 2.
    pub async fn recent(&self, user: u32, after: u32) -> Result<Vec<Session>> {
        let rows: Vec<SessionRow> = self
            .store
            .slave(async |c| {
                diesel::sql_query(
                "SELECT id, userId, peerId, type, status, created, updated FROM IMRecentSession \
                 WHERE userId = ? AND status = 0 AND updated > ? ORDER BY updated DESC LIMIT ?",
            )
            .bind::<Unsigned<Integer>, _>(user)
            .bind::<Unsigned<Integer>, _>(after)
            .bind::<Unsigned<Integer>, _>(RECENT_LIMIT)
            .cached()
            .load(c)
            .await
            .ctx("IMRecentSession recent")
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Session {
                id: u32::try_from(r.id).unwrap_or(0),
                user_id: r.user_id,
                peer_id: r.peer_id,
                kind: r.kind.unwrap_or(0),
                status: r.status.unwrap_or(0),
                created: r.created,
                updated: r.updated,
            })
            .collect())
    }
}

/// What a single send needs to know before storing (see [`Sessions::single_send_lookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendLookup {
    /// Visible single session of the sender (userId = from, peerId = to), newest row.
    pub sender_session: Option<u32>,
    /// Visible single session of the receiver (userId = to, peerId = from), newest row.
    pub receiver_session: Option<u32>,
    /// Active relation (status 0) of the pair, newest row, or its id as read or created
    /// within `StoreConfig::relation_ids_ttl`.
    pub relate_id: Option<u32>,
}

/// `updated = t` on row `id` using an existing connection (used inside message
/// transactions). Returns whether a row matched.
pub async fn update_on(c: &mut DbConn, id: u32, t: u32) -> Result<bool> {
    if id == 0 {
        return Ok(false);
    }
    let n = diesel::sql_query("UPDATE IMRecentSession SET updated = ? WHERE id = ?")
        .bind::<Unsigned<Integer>, _>(t)
        .bind::<Unsigned<Integer>, _>(id)
        .cached()
        .execute(c)
        .await
        .ctx("IMRecentSession update")?;
    Ok(n > 0)
}

/// Sorted, de-duplicated, non-zero session ids (the lock order of [`bump_on`]).
fn lock_order(ids: &[u32]) -> Vec<u32> {
    let mut v: Vec<u32> = ids.iter().copied().filter(|&id| id != 0).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `updated = t` on every row of `ids` (0s ignored) with ONE statement
/// (`UPDATE IMRecentSession SET updated = ? WHERE id IN (...)`, ids sorted) on an existing
/// connection, so two transactions bumping the same rows lock them in the same order.
/// Returns the number of rows matched.
pub async fn bump_on(c: &mut DbConn, ids: &[u32], t: u32) -> Result<usize> {
    let ids = lock_order(ids);
    let Some(&last) = ids.last() else {
        return Ok(0);
    };
    if ids.len() <= BUMP_MAX_CACHED {
        // Padded (with the last id again) to one of a few sizes: the text stays prepared.
        let (sql, size) = BUMP_TEXTS.for_len(ids.len());
        let mut q = diesel::sql_query(sql)
            .into_boxed::<diesel::mysql::Mysql>()
            .bind::<Unsigned<Integer>, _>(t);
        for i in 0..size {
            q = q.bind::<Unsigned<Integer>, _>(ids.get(i).copied().unwrap_or(last));
        }
        return q.cached().execute(c).await.ctx("IMRecentSession update");
    }
    let mut q = diesel::sql_query(bump_sql(ids.len()))
        .into_boxed::<diesel::mysql::Mysql>()
        .bind::<Unsigned<Integer>, _>(t);
    for id in &ids {
        q = q.bind::<Unsigned<Integer>, _>(*id);
    }
    q.execute(c).await.ctx("IMRecentSession update")
}

/// Prepared sizes of [`bump_on`]: a message batch (up to 32 sends, two sessions each) bumps
/// up to 64 sessions, which would otherwise need a one-off text (a prepare round trip and
/// MariaDB's prepare work on every batch).
const BUMP_SIZES: [usize; 8] = [1, 2, 4, 8, 16, 32, 48, 64];

/// Largest id list [`bump_on`] pads to a prepared size; longer lists use a one-off text.
const BUMP_MAX_CACHED: usize = BUMP_SIZES[BUMP_SIZES.len() - 1];

static BUMP_TEXTS: std::sync::LazyLock<crate::batch::BucketTexts> =
    std::sync::LazyLock::new(|| crate::batch::BucketTexts::with_sizes(&BUMP_SIZES, bump_sql));

fn bump_sql(n: usize) -> String {
    let mut s = String::from("UPDATE IMRecentSession SET updated = ? WHERE id IN (?");
    for _ in 1..n {
        s.push_str(", ?");
    }
    s.push(')');
    s
}

/// One row of the batched send lookup: a session (`kind` 1: owner `a`, peer `b`) or a
/// relation (`kind` 0: `a` = smallId, `b` = bigId), with its id.
#[derive(QueryableByName)]
struct LookupRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    kind: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    a: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    b: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The sessions part of the send lookup of `n` pairs: the newest visible single session of
/// both sides of every pair, one grouped SELECT with a row-constructor `IN` list of bound
/// pairs ([`crate::relation::pair_markers`]; binds from, to, to, from per pair).
fn send_lookup_sessions_sql(n: usize) -> String {
    format!(
        "(SELECT CAST(1 AS SIGNED) AS kind, CAST(userId AS SIGNED) AS a, \
         CAST(peerId AS SIGNED) AS b, CAST(MAX(id) AS SIGNED) AS id FROM IMRecentSession \
         WHERE type = 1 AND status = 0 AND (userId, peerId) IN ({}) \
         GROUP BY userId, peerId)",
        crate::relation::pair_markers(2 * n)
    )
}

/// The send lookup of `n` pairs whose relations are not all remembered: ONE statement, the
/// sessions part then the active relation of every pair (binds small, big per pair). Far
/// cheaper for MariaDB than one sub-select per pair.
fn send_lookup_sql(n: usize) -> String {
    format!(
        "{} UNION ALL \
         (SELECT CAST(0 AS SIGNED), CAST(smallId AS SIGNED), CAST(bigId AS SIGNED), \
         CAST(MAX(id) AS SIGNED) FROM IMRelationShip WHERE status = 0 \
         AND (smallId, bigId) IN ({}) GROUP BY smallId, bigId)",
        send_lookup_sessions_sql(n),
        crate::relation::pair_markers(n)
    )
}

/// What every send lookup batch shares: its prepared texts (padded to fixed sizes) and the
/// remembered relation ids.
struct SendLookupShared {
    /// Sessions and relations ([`send_lookup_sql`]).
    both: crate::batch::BucketTexts,
    /// Sessions only, when every relation is remembered ([`send_lookup_sessions_sql`]).
    sessions: crate::batch::BucketTexts,
    /// Relation ids read or created lately.
    relation_ids: std::sync::Arc<crate::relation::RelationIds>,
}

/// Coalescer behind [`Sessions::single_send_lookup`]: the lookups of concurrent sends share
/// one master statement, padded to a fixed size so the text stays prepared. Reads
/// `IMRecentSession`, and `IMRelationShip` unless the relation of every pair is remembered
/// ([`crate::relation::RelationIds`]); the relations it reads are remembered.
pub(crate) fn send_lookup_coalescer(
    pools: crate::store::Pools,
    shape: crate::batch::Shape,
    relation_ids: std::sync::Arc<crate::relation::RelationIds>,
    timings: &crate::timing::Timings,
) -> crate::batch::Coalescer<(u32, u32), SendLookup> {
    let shared = std::sync::Arc::new(SendLookupShared {
        both: crate::batch::BucketTexts::new(send_lookup_sql),
        sessions: crate::batch::BucketTexts::new(send_lookup_sessions_sql),
        relation_ids,
    });
    crate::batch::Coalescer::spawn(
        "send_lookup",
        shape,
        timings,
        move |pairs: Vec<(u32, u32)>| {
            let pools = pools.clone();
            let shared = shared.clone();
            async move {
                let n = pairs.len();
                let outcome = pools
                    .master(async |c| send_lookups_on(c, &shared, &pairs).await)
                    .await;
                crate::batch::fan_out(n, outcome)
            }
        },
    )
}

/// One [`SendLookup`] per `(from, to)` pair, in order, from one statement on an existing
/// connection: [`send_lookup_sessions_sql`] when the relation of every pair is remembered,
/// else [`send_lookup_sql`] (whose relations are then remembered).
async fn send_lookups_on(
    c: &mut DbConn,
    shared: &SendLookupShared,
    pairs: &[(u32, u32)],
) -> Result<Vec<SendLookup>> {
    let keys: Vec<(u32, u32)> = pairs
        .iter()
        .filter_map(|&(from, to)| crate::relation::pair(from, to))
        .collect();
    let (mut relations, missing) = shared.relation_ids.split(&keys);
    let read_relations = !missing.is_empty();
    let family = if read_relations {
        &shared.both
    } else {
        &shared.sessions
    };
    let (sql, size) = family.for_len(pairs.len());
    let pick = |i: usize| pairs.get(i).or(pairs.last()).copied().unwrap_or((0, 0));
    let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
    for i in 0..size {
        let (from, to) = pick(i);
        for v in [from, to, to, from] {
            q = q.bind::<Unsigned<Integer>, _>(v);
        }
    }
    if read_relations {
        for i in 0..size {
            let (from, to) = pick(i);
            q = q
                .bind::<Unsigned<Integer>, _>(from.min(to))
                .bind::<Unsigned<Integer>, _>(from.max(to));
        }
    }
    let rows: Vec<LookupRow> = q.cached().load(c).await.ctx("send lookup (batch)")?;
    let mut sessions = std::collections::HashMap::new();
    let mut read = Vec::new();
    for r in rows {
        let (Ok(a), Ok(b)) = (u32::try_from(r.a), u32::try_from(r.b)) else {
            continue;
        };
        let Some(id) = u32::try_from(r.id).ok().filter(|&v| v != 0) else {
            continue;
        };
        if r.kind == 1 {
            sessions.insert((a, b), id);
        } else {
            read.push(((a, b), id));
        }
    }
    shared.relation_ids.remember(read.iter().copied());
    relations.extend(read);
    Ok(pairs
        .iter()
        .map(|&(from, to)| SendLookup {
            sender_session: sessions.get(&(from, to)).copied(),
            receiver_session: sessions.get(&(to, from)).copied(),
            relate_id: relations.get(&(from.min(to), from.max(to))).copied(),
        })
        .collect())
}
