//! Single and group messages: id allocation, storage, lists and lookups
//! (docs/compatibility.md#newest-message, docs/compatibility.md#sending-a-message, docs/compatibility.md#message-history-reads; quirks Q-M03–Q-M05, Q-D07).
//!
//! Tables: `IMMessage_<relateId % 8>`, `IMGroupMessage_<groupId % 8>` (static per-shard
//! SQL, see [`crate::db::shard`]), `IMRecentSession.updated` and `IMGroup.lastChated` (bumped
//! in the same transaction as the insert). Redis (`unread` instance): counters
//! `msg_id_<relateId>` and `group_msg_id_<G>`.
//!
//! Content is handled as raw bytes (`msg_data` is stored verbatim; the column is
//! utf8mb4, so non-UTF-8 data makes the insert fail as in the original).

use diesel::mysql::Mysql;
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, TinyInt, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::db::shard::{shard_of, shard_sql};
use crate::db::sql::{col, CacheExt};
use std::time::Duration;

use crate::db::{Db, DbPool, Pools};
use crate::error::{Error, MysqlResultExt, Result};
use crate::redis::keys::{group_counter_key, single_counter_key};
use crate::redis::scripts::{INCR_IF_EXISTS, SEED_AND_INCR};
use crate::redis::Cache;
use crate::repo::session;

/// Maximum rows of a by-id lookup (docs/compatibility.md#message-history-reads).
pub const BY_ID_LIMIT: usize = 100;

/// One row of `IMMessage_N` (NULL content read as empty, Q-D03). Read by position (see
/// `col`): every text producing it selects `id, relateId, fromId, toId, msgId, content,
/// type, status, created, updated` in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleMessage {
    /// Row id (tie-breaker of the ordering).
    pub id: i32,
    pub relate_id: u32,
    pub from_id: u32,
    pub to_id: u32,
    pub msg_id: u32,
    pub content: Vec<u8>,
    /// MsgType: 1 text, 2 audio.
    pub kind: u8,
    pub status: u8,
    pub created: u32,
    pub updated: u32,
}

impl SingleMessage {
    /// The ten columns starting at `at` (see the type's docs for their order).
    pub(crate) fn read_at<'a>(
        row: &impl diesel::row::NamedRow<'a, Mysql>,
        at: usize,
    ) -> diesel::deserialize::Result<Self> {
        Ok(SingleMessage {
            id: col::<Integer, _>(row, at)?,
            relate_id: col::<Unsigned<Integer>, _>(row, at + 1)?,
            from_id: col::<Unsigned<Integer>, _>(row, at + 2)?,
            to_id: col::<Unsigned<Integer>, _>(row, at + 3)?,
            msg_id: col::<Unsigned<Integer>, _>(row, at + 4)?,
            content: col::<Nullable<Binary>, NullableBytes>(row, at + 5)?.into(),
            kind: col::<Unsigned<TinyInt>, _>(row, at + 6)?,
            status: col::<Unsigned<TinyInt>, _>(row, at + 7)?,
            created: col::<Unsigned<Integer>, _>(row, at + 8)?,
            updated: col::<Unsigned<Integer>, _>(row, at + 9)?,
        })
    }
}

impl QueryableByName<Mysql> for SingleMessage {
    fn build<'a>(row: &impl diesel::row::NamedRow<'a, Mysql>) -> diesel::deserialize::Result<Self> {
        Self::read_at(row, 0)
    }
}

/// One row of `IMGroupMessage_N`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct GroupMessage {
    #[diesel(sql_type = Integer)]
    pub id: i32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "groupId")]
    pub group_id: u32,
    /// Sender.
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "userId")]
    pub from_id: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "msgId")]
    pub msg_id: u32,
    #[diesel(sql_type = Binary)]
    pub content: Vec<u8>,
    /// MsgType: 0x11 group text, 0x12 group audio.
    #[diesel(sql_type = Unsigned<TinyInt>)]
    #[diesel(column_name = "type")]
    pub kind: u8,
    #[diesel(sql_type = Unsigned<Integer>)]
    pub status: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    pub created: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    pub updated: u32,
}

/// `Option<Vec<u8>>` column read as empty bytes when NULL.
#[derive(Debug)]
pub(crate) struct NullableBytes(Option<Vec<u8>>);

impl From<NullableBytes> for Vec<u8> {
    fn from(v: NullableBytes) -> Self {
        v.0.unwrap_or_default()
    }
}

impl diesel::deserialize::FromSql<Nullable<Binary>, Mysql> for NullableBytes {
    fn from_sql(bytes: diesel::mysql::MysqlValue<'_>) -> diesel::deserialize::Result<Self> {
        <Vec<u8> as diesel::deserialize::FromSql<Binary, Mysql>>::from_sql(bytes)
            .map(|v| NullableBytes(Some(v)))
    }
    fn from_nullable_sql(
        bytes: Option<diesel::mysql::MysqlValue<'_>>,
    ) -> diesel::deserialize::Result<Self> {
        match bytes {
            Some(b) => Self::from_sql(b),
            None => Ok(NullableBytes(None)),
        }
    }
}

impl diesel::deserialize::Queryable<Nullable<Binary>, Mysql> for NullableBytes {
    type Row = Self;
    fn build(row: Self) -> diesel::deserialize::Result<Self> {
        Ok(row)
    }
}

/// A single-chat message to store.
#[derive(Debug, Clone, Copy)]
pub struct NewSingleMessage<'a> {
    pub relate_id: u32,
    pub from_id: u32,
    pub to_id: u32,
    pub msg_id: u32,
    pub content: &'a [u8],
    pub kind: u8,
    /// `create_time` of the request (stored as created and updated, Q-M07).
    pub created: u32,
}

/// A single-chat message to send: `Messages::send_single` allocates its msgId.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingSingle<'a> {
    pub relate_id: u32,
    pub from_id: u32,
    pub to_id: u32,
    pub content: &'a [u8],
    pub kind: u8,
    /// `create_time` of the request (stored as created and updated, Q-M07).
    pub created: u32,
}

/// Outcome of `Messages::send_single` once its msgId was allocated.
#[derive(Debug)]
pub enum Sent {
    /// The row is committed (and the sessions bumped) under this msgId.
    Stored(u32),
    /// `msg_id` was allocated but nothing was stored; the sessions were not bumped.
    NotStored { msg_id: u32, error: Error },
}

/// A group message to store.
#[derive(Debug, Clone, Copy)]
pub struct NewGroupMessage<'a> {
    pub group_id: u32,
    pub from_id: u32,
    pub msg_id: u32,
    pub content: &'a [u8],
    pub kind: u8,
    pub created: u32,
}

/// Newest visible message of a conversation (docs/compatibility.md#newest-message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newest {
    pub msg_id: u32,
    pub kind: u8,
    /// Sender for group messages; the stored fromId for single messages.
    pub from_id: u32,
    pub content: Vec<u8>,
}

#[derive(QueryableByName)]
struct NewestRow {
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "msgId")]
    msg_id: u32,
    #[diesel(sql_type = Unsigned<TinyInt>)]
    #[diesel(column_name = "type")]
    kind: u8,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "fromId")]
    from_id: u32,
    #[diesel(sql_type = Nullable<Binary>)]
    #[diesel(deserialize_as = NullableBytes)]
    content: Vec<u8>,
}

#[derive(QueryableByName)]
struct MaxRow {
    #[diesel(sql_type = Unsigned<BigInt>)]
    v: u64,
}

// ---------------------------------------------------------------------------------------
// Id allocation (Q-M04, Q-M05)

const MAX_SINGLE: [&str; 8] = shard_sql!(
    IMMessage,
    "SELECT CAST(COALESCE(MAX(msgId), 0) AS UNSIGNED) AS v FROM ",
    " WHERE relateId = ?"
);
const MAX_GROUP: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "SELECT CAST(COALESCE(MAX(msgId), 0) AS UNSIGNED) AS v FROM ",
    " WHERE groupId = ?"
);

/// Next value of the counter `key` in `cache`; `max_sql` reads the highest stored msgId of
/// `id` when the counter is missing (give it a master pool).
async fn allocate(
    pool: &mut DbPool<'_>,
    cache: &Cache,
    key: String,
    max_sql: &'static str,
    id: u32,
) -> Result<u32> {
    let keys = [key];
    let mut v = cache
        .eval_replicated(&INCR_IF_EXISTS, &keys, &[])
        .await?
        .as_i64();
    if v.is_none() {
        // Counter lost (or never created): seed from the highest stored msgId.
        let max: MaxRow = pool
            .run(async |c| {
                diesel::sql_query(max_sql)
                    .bind::<Unsigned<Integer>, _>(id)
                    .cached()
                    .get_result(c)
                    .await
                    .ctx("MAX(msgId)")
            })
            .await?;
        v = cache
            .eval_replicated(&SEED_AND_INCR, &keys, &[max.v.to_string()])
            .await?
            .as_i64();
    }
    msg_id_in_range(&keys[0], v)
}

/// A counter value usable as a msgId: 1..=u32::MAX (Q-M04: never 0 or wrapped).
pub(crate) fn msg_id_in_range(key: &str, v: Option<i64>) -> Result<u32> {
    match v.map(u32::try_from) {
        Some(Ok(n)) if n > 0 => Ok(n),
        _ => Err(Error::redis_reply(
            format!("allocate {key}"),
            format!("counter out of range: {v:?}"),
        )),
    }
}

/// Next msgId of the pair `relate_id`: INCRBY `msg_id_<R>`; when the key is missing it is
/// first raised to MAX(msgId) of `IMMessage_<R % 8>` for R. Never returns 0 or a wrapped
/// value (errors instead, Q-M04).
pub(crate) async fn allocate_single(
    pool: &mut DbPool<'_>,
    cache: &Cache,
    relate_id: u32,
) -> Result<u32> {
    allocate(
        pool,
        cache,
        single_counter_key(relate_id),
        MAX_SINGLE[shard_of(relate_id)],
        relate_id,
    )
    .await
}

/// Next msgId of group `group_id` (`group_msg_id_<G>`, seeded from `IMGroupMessage_<G % 8>`).
pub(crate) async fn allocate_group(
    pool: &mut DbPool<'_>,
    cache: &Cache,
    group_id: u32,
) -> Result<u32> {
    allocate(
        pool,
        cache,
        group_counter_key(group_id),
        MAX_GROUP[shard_of(group_id)],
        group_id,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Storage

/// Whether a failed message transaction may have committed: its COMMIT failed or was cut
/// off, or the whole unit timed out (the COMMIT may have been sent).
pub(crate) fn outcome_unknown(e: &Error) -> bool {
    matches!(e.inner(), Error::Commit { .. } | Error::Timeout { .. })
}

/// Whether the row of a 1:1 message exists, waiting for a transaction that holds it; binds
/// relation id, msgId, fromId, created (msgIds are not unique in old data, so the row is
/// matched on what this write stored too). `status = 0` (what an insert writes)
/// lets the (relateId, status, msgId) index find the row alone, so only it is locked.
pub(crate) const STORED_SINGLE: [&str; 8] = shard_sql!(
    IMMessage,
    "SELECT COUNT(*) AS n FROM ",
    " WHERE relateId = ? AND status = 0 AND msgId = ? AND fromId = ? AND created = ? \
     LOCK IN SHARE MODE"
);

/// [`STORED_SINGLE`] for group shards: binds group id, msgId, userId, created.
pub(crate) const STORED_GROUP: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "SELECT COUNT(*) AS n FROM ",
    " WHERE groupId = ? AND msgId = ? AND userId = ? AND created = ? LOCK IN SHARE MODE"
);

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether the message transaction that wrote `row` (owner, msgId, sender, created) was
/// committed (docs/compatibility.md#a-message-whose-commit-was-cut-off), asked on the master
/// by `sql` ([`STORED_SINGLE`] or the group one) until it answers or `within` passes (`None`). The
/// read locks the row: while that transaction is still open on the server (its COMMIT on
/// the way), the read waits for it, so the answer is final, not a snapshot. A transaction
/// is all or nothing, so one of its rows tells for all.
pub(crate) async fn settle(
    pools: &Pools,
    sql: &'static str,
    row: [u32; 4],
    within: Duration,
) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let asked = pools
            .on(Db::Master)
            .run(async |c| {
                // A lock wait shorter than the unit's timeout: a wait that ends in a lock
                // error is asked again, instead of a timed-out unit that discards the
                // connection (and counts against the breaker).
                diesel::sql_query("SET SESSION innodb_lock_wait_timeout = 1")
                    .execute(c)
                    .await
                    .ctx("lock wait for the outcome check")?;
                let asked = diesel::sql_query(sql)
                    .bind::<Unsigned<Integer>, _>(row[0])
                    .bind::<Unsigned<Integer>, _>(row[1])
                    .bind::<Unsigned<Integer>, _>(row[2])
                    .bind::<Unsigned<Integer>, _>(row[3])
                    .get_result::<Count>(c)
                    .await
                    .ctx("message stored?");
                diesel::sql_query("SET SESSION innodb_lock_wait_timeout = DEFAULT")
                    .execute(c)
                    .await
                    .ctx("lock wait back to the server's")?;
                asked
            })
            .await;
        match asked {
            Ok(count) => return Some(count.n > 0),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                tracing::debug!(error = %e, "outcome check gave up");
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

const INSERT_GROUP: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "INSERT INTO ",
    " (groupId, userId, msgId, content, type, status, updated, created) \
     VALUES (?, ?, ?, ?, ?, 0, ?, ?)"
);

/// Store a group message, set `IMGroup.lastChated = now` of the group and bump the given
/// session ids to `session_time`, in ONE transaction, run again when MariaDB rolled it back
/// for a lock conflict. Writes `IMGroupMessage_<group_id % 8>`, `IMGroup`, `IMRecentSession`.
pub(crate) async fn store_group(
    pool: &mut DbPool<'_>,
    m: &NewGroupMessage<'_>,
    now: u32,
    sessions: &[u32],
    session_time: u32,
) -> Result<()> {
    let sql = INSERT_GROUP[shard_of(m.group_id)];
    pool.transaction_retried("store_group", async |c| {
        diesel::sql_query(sql)
            .bind::<Unsigned<Integer>, _>(m.group_id)
            .bind::<Unsigned<Integer>, _>(m.from_id)
            .bind::<Unsigned<Integer>, _>(m.msg_id)
            .bind::<Binary, _>(m.content)
            .bind::<Unsigned<TinyInt>, _>(m.kind)
            .bind::<Unsigned<Integer>, _>(m.created)
            .bind::<Unsigned<Integer>, _>(m.created)
            .cached()
            .execute(c)
            .await
            .ctx("IMGroupMessage insert")?;
        diesel::sql_query("UPDATE IMGroup SET lastChated = ? WHERE id = ?")
            .bind::<Unsigned<Integer>, _>(now)
            .bind::<Unsigned<Integer>, _>(m.group_id)
            .cached()
            .execute(c)
            .await
            .ctx("IMGroup lastChated")?;
        session::bump(&mut DbPool::Conn(c), sessions, session_time)
            .await
            .map(|_| ())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Reads

const LIST_SINGLE: [&str; 8] = shard_sql!(
    IMMessage,
    "SELECT id, relateId, fromId, toId, msgId, content, type, status, created, updated FROM ",
    " FORCE INDEX (idx_relateId_status_created) WHERE relateId = ? AND status = 0 \
     AND (? = 0 OR msgId <= ?) ORDER BY created DESC, id DESC LIMIT ?"
);
const LIST_GROUP: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "SELECT id, groupId, userId, msgId, content, type, status, created, updated FROM ",
    " WHERE groupId = ? AND status = 0 AND created >= ? \
     AND (? = 0 OR msgId <= ?) ORDER BY created DESC, id DESC LIMIT ?"
);

/// Message list of a pair: status 0, `msgId <= begin` when begin ≠ 0, newest first
/// (created desc, id desc — Q-D07), at most `count` rows (uncapped, Q-D09; 0 → empty, no
/// statement). Reads `IMMessage_<relate_id % 8>` with FORCE INDEX
/// (idx_relateId_status_created).
pub(crate) async fn list_single(
    pool: &mut DbPool<'_>,
    relate_id: u32,
    begin: u32,
    count: u32,
) -> Result<Vec<SingleMessage>> {
    if count == 0 || relate_id == 0 {
        return Ok(Vec::new());
    }
    pool.run(async |c| {
        diesel::sql_query(LIST_SINGLE[shard_of(relate_id)])
            .bind::<Unsigned<Integer>, _>(relate_id)
            .bind::<Unsigned<Integer>, _>(begin)
            .bind::<Unsigned<Integer>, _>(begin)
            .bind::<Unsigned<Integer>, _>(count)
            .cached()
            .load(c)
            .await
            .ctx("IMMessage list")
    })
    .await
}

pub(crate) fn dedup_ids(ids: &[u32]) -> Vec<u32> {
    let mut v: Vec<u32> = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Static per-shard SQL up to the `IN (` of the msgId list (see [`in_list_sql`]).
const BY_IDS_SINGLE: [&str; 8] = shard_sql!(
    IMMessage,
    "SELECT id, relateId, fromId, toId, msgId, content, type, status, created, updated FROM ",
    " WHERE relateId = ? AND status = 0 AND msgId IN ("
);
const BY_IDS_GROUP: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "SELECT id, groupId, userId, msgId, content, type, status, created, updated FROM ",
    " WHERE groupId = ? AND status = 0 AND created >= ? AND msgId IN ("
);
/// Closes the msgId list; newest first, at most [`BY_ID_LIMIT`] rows.
const BY_IDS_TAIL: &str = ") ORDER BY created DESC, id DESC LIMIT 100";

/// `head` + `?, ?, …` (`n` placeholders) + `tail`. Only static text and the number of
/// ids go into the SQL; every value is bound.
fn in_list_sql(head: &'static str, n: usize, tail: &'static str) -> String {
    let mut sql = String::with_capacity(head.len() + n * 3 + tail.len());
    sql.push_str(head);
    for i in 0..n {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
    }
    sql.push_str(tail);
    sql
}

const NEWEST_SINGLE: [&str; 8] = shard_sql!(
    IMMessage,
    "SELECT msgId, type, fromId, content FROM ",
    " WHERE relateId = ? AND status = 0 ORDER BY created DESC, id DESC LIMIT 1"
);
const NEWEST_GROUP: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "SELECT msgId, type, userId AS fromId, content FROM ",
    " WHERE groupId = ? AND status = 0 ORDER BY created DESC, id DESC LIMIT 1"
);

/// Message list of a group for a member who joined at `join_time`: status 0,
/// `created >= join_time`, `msgId <= begin` when begin ≠ 0, newest first, at most `count`
/// (0 → empty, no statement). Reads `IMGroupMessage_<group_id % 8>`.
pub(crate) async fn list_group(
    pool: &mut DbPool<'_>,
    group_id: u32,
    join_time: u32,
    begin: u32,
    count: u32,
) -> Result<Vec<GroupMessage>> {
    if count == 0 || group_id == 0 {
        return Ok(Vec::new());
    }
    let sql = LIST_GROUP[shard_of(group_id)];
    pool.run(async |c| {
        diesel::sql_query(sql)
            .bind::<Unsigned<Integer>, _>(group_id)
            .bind::<Unsigned<Integer>, _>(join_time)
            .bind::<Unsigned<Integer>, _>(begin)
            .bind::<Unsigned<Integer>, _>(begin)
            .bind::<Unsigned<Integer>, _>(count)
            .cached()
            .load(c)
            .await
            .ctx("IMGroupMessage list")
    })
    .await
}

/// Messages of a pair by msgId: status 0, `msgId IN ids`, newest first, at most
/// [`BY_ID_LIMIT`]. Empty `ids` → empty, no statement. Reads `IMMessage_<relate_id % 8>`.
pub(crate) async fn by_ids_single(
    pool: &mut DbPool<'_>,
    relate_id: u32,
    ids: &[u32],
) -> Result<Vec<SingleMessage>> {
    let ids = dedup_ids(ids);
    if ids.is_empty() || relate_id == 0 {
        return Ok(Vec::new());
    }
    let sql = in_list_sql(BY_IDS_SINGLE[shard_of(relate_id)], ids.len(), BY_IDS_TAIL);
    pool.run(async |c| {
        let mut q = diesel::sql_query(sql.as_str())
            .into_boxed::<Mysql>()
            .bind::<Unsigned<Integer>, _>(relate_id);
        for id in &ids {
            q = q.bind::<Unsigned<Integer>, _>(*id);
        }
        q.load(c).await.ctx("IMMessage by ids")
    })
    .await
}

/// Group messages by msgId for a member who joined at `join_time`: status 0,
/// `created >= join_time`, newest first, at most [`BY_ID_LIMIT`]. Reads
/// `IMGroupMessage_<G % 8>`.
pub(crate) async fn by_ids_group(
    pool: &mut DbPool<'_>,
    group_id: u32,
    join_time: u32,
    ids: &[u32],
) -> Result<Vec<GroupMessage>> {
    let ids = dedup_ids(ids);
    if ids.is_empty() || group_id == 0 {
        return Ok(Vec::new());
    }
    let sql = in_list_sql(BY_IDS_GROUP[shard_of(group_id)], ids.len(), BY_IDS_TAIL);
    pool.run(async |c| {
        let mut q = diesel::sql_query(sql.as_str())
            .into_boxed::<Mysql>()
            .bind::<Unsigned<Integer>, _>(group_id)
            .bind::<Unsigned<Integer>, _>(join_time);
        for id in &ids {
            q = q.bind::<Unsigned<Integer>, _>(*id);
        }
        q.load(c).await.ctx("IMGroupMessage by ids")
    })
    .await
}

async fn newest(
    pool: &mut DbPool<'_>,
    sql: &'static str,
    id: u32,
    what: &'static str,
) -> Result<Option<Newest>> {
    if id == 0 {
        return Ok(None);
    }
    let rows: Vec<NewestRow> = pool
        .run(async |c| {
            diesel::sql_query(sql)
                .bind::<Unsigned<Integer>, _>(id)
                .cached()
                .load(c)
                .await
                .ctx(what)
        })
        .await?;
    Ok(rows.into_iter().next().map(|r| Newest {
        msg_id: r.msg_id,
        kind: r.kind,
        from_id: r.from_id,
        content: r.content,
    }))
}

/// Newest visible message of the pair `relate_id` (the voice placeholder is the caller's
/// job). Reads `IMMessage_<relate_id % 8>`.
pub(crate) async fn newest_single(pool: &mut DbPool<'_>, relate_id: u32) -> Result<Option<Newest>> {
    newest(
        pool,
        NEWEST_SINGLE[shard_of(relate_id)],
        relate_id,
        "IMMessage newest",
    )
    .await
}

/// Newest visible message of group `group_id` (no join-time filter, Q-M12). Reads
/// `IMGroupMessage_<group_id % 8>`.
pub(crate) async fn newest_group(pool: &mut DbPool<'_>, group_id: u32) -> Result<Option<Newest>> {
    newest(
        pool,
        NEWEST_GROUP[shard_of(group_id)],
        group_id,
        "IMGroupMessage newest",
    )
    .await
}
