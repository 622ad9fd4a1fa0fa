//! IMRecentSession: per-user conversation list (docs/compatibility.md#session-primitives, docs/compatibility.md#recent-session-list).
//!
//! Reads/writes table `IMRecentSession` only (userId, peerId, type, status, created,
//! updated). Session type 1 = single, 2 = group.

use diesel::sql_types::{Integer, Nullable, TinyInt, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::batch::texts::BucketTexts;
use crate::db::lock::{session_lock, with_lock};
use crate::db::sql::{last_insert_id, CacheExt};
use crate::db::{unix_now, DbConn, DbPool};
use crate::error::{MysqlResultExt, Result};

/// Session type: single chat.
pub const SINGLE: u8 = 1;
/// Session type: group chat.
pub const GROUP: u8 = 2;

/// Maximum rows returned by `Sessions::recent`.
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

/// What a single send needs to know before storing (see `Sessions::single_send_lookup`).
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

/// Session id of (user, peer, kind) — visible ones only unless `any_status`; the newest
/// row wins when there are duplicates. Reads `IMRecentSession`.
pub(crate) async fn find(
    pool: &mut DbPool<'_>,
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
    let rows: Vec<IdRow> = pool
        .run(async |c| {
            diesel::sql_query(sql)
                .bind::<Unsigned<Integer>, _>(user)
                .bind::<Unsigned<Integer>, _>(peer)
                .bind::<Unsigned<TinyInt>, _>(kind)
                .cached()
                .load(c)
                .await
                .ctx("IMRecentSession find")
        })
        .await?;
    Ok(rows.into_iter().next().and_then(|r| to_id(r.id)))
}

/// addSession: reactivate the existing (user, peer, kind) row (`status = 0, updated =
/// now`) or insert (user, peer, kind, 0, now, now), under the advisory lock of the triple.
/// Returns the session id. Give it a master pool.
pub(crate) async fn add(pool: &mut DbPool<'_>, user: u32, peer: u32, kind: u8) -> Result<u32> {
    let lock = session_lock(user, peer, kind);
    pool.run(async |c| {
        with_lock(c, &lock, async |c: &mut DbConn| {
            let now = unix_now();
            if let Some(id) = find(&mut DbPool::Conn(&mut *c), user, peer, kind, true).await? {
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

/// `updated = t` on row `id`. Returns whether a row matched (id 0 matches nothing, and
/// sends no statement).
pub(crate) async fn update(pool: &mut DbPool<'_>, id: u32, t: u32) -> Result<bool> {
    if id == 0 {
        return Ok(false);
    }
    let n = pool
        .run(async |c| {
            diesel::sql_query("UPDATE IMRecentSession SET updated = ? WHERE id = ?")
                .bind::<Unsigned<Integer>, _>(t)
                .bind::<Unsigned<Integer>, _>(id)
                .cached()
                .execute(c)
                .await
                .ctx("IMRecentSession update")
        })
        .await?;
    Ok(n > 0)
}

/// Sorted, de-duplicated, non-zero session ids (the lock order of [`bump`]).
fn lock_order(ids: &[u32]) -> Vec<u32> {
    let mut v: Vec<u32> = ids.iter().copied().filter(|&id| id != 0).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `updated = t` on every row of `ids` (0s ignored; none: no statement) with ONE statement
/// (`UPDATE IMRecentSession SET updated = ? WHERE id IN (...)`, ids sorted), so two
/// transactions bumping the same rows lock them in the same order. Returns the number of
/// rows matched.
pub(crate) async fn bump(pool: &mut DbPool<'_>, ids: &[u32], t: u32) -> Result<usize> {
    let ids = lock_order(ids);
    let Some(&last) = ids.last() else {
        return Ok(0);
    };
    pool.run(async |c| {
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
    })
    .await
}

/// Prepared sizes of [`bump`]: a message batch (up to 32 sends, two sessions each) bumps
/// up to 64 sessions, which would otherwise need a one-off text (a prepare round trip and
/// MariaDB's prepare work on every batch).
const BUMP_SIZES: [usize; 8] = [1, 2, 4, 8, 16, 32, 48, 64];

/// Largest id list [`bump`] pads to a prepared size; longer lists use a one-off text.
const BUMP_MAX_CACHED: usize = BUMP_SIZES[BUMP_SIZES.len() - 1];

static BUMP_TEXTS: std::sync::LazyLock<BucketTexts> =
    std::sync::LazyLock::new(|| BucketTexts::with_sizes(&BUMP_SIZES, bump_sql));

fn bump_sql(n: usize) -> String {
    let mut s = String::from("UPDATE IMRecentSession SET updated = ? WHERE id IN (?");
    for _ in 1..n {
        s.push_str(", ?");
    }
    s.push(')');
    s
}

/// removeSession: `status = 1, updated = now` on row `id` (id 0: no statement). Returns
/// whether a row matched.
pub(crate) async fn remove(pool: &mut DbPool<'_>, id: u32) -> Result<bool> {
    if id == 0 {
        return Ok(false);
    }
    let now = unix_now();
    let n = pool
        .run(async |c| {
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

/// Recent sessions of `user`: status 0 and `updated > after`, newest first, at most
/// [`RECENT_LIMIT`]. Rows of any type are returned.
pub(crate) async fn recent(pool: &mut DbPool<'_>, user: u32, after: u32) -> Result<Vec<Session>> {
    let rows: Vec<SessionRow> = pool
        .run(async |c| {
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
