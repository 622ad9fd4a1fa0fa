//! Single and group messages: id allocation, storage, lists and lookups
//! (behaviour.md §10.5, §11.10, §11.13–§11.15; quirks Q-M03–Q-M05, Q-D07).
//!
//! Tables: `IMMessage_<relateId % 8>`, `IMGroupMessage_<groupId % 8>` (static per-shard
//! SQL, see [`crate::shard`]), `IMRecentSession.updated` and `IMGroup.lastChated` (bumped
//! in the same transaction as the insert). Redis (`unread` instance): counters
//! `msg_id_<relateId>` and `group_msg_id_<G>`.
//!
//! Content is handled as raw bytes (`msg_data` is stored verbatim; the column is
//! utf8mb4, so non-UTF-8 data makes the insert fail as in the original).

use diesel::mysql::Mysql;
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, TinyInt, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::batch::{Padding, ShardLists, ShardSlots};
use crate::cache::{Cache, Script, ScriptValue};
use crate::error::{Error, MysqlResultExt, Result};
use crate::session;
use crate::shard::shard_of;
use crate::shard_sql;
use crate::sql::{col, CacheExt};
use crate::store::{DbConn, Pools, Store};

/// Maximum rows of a by-id lookup (§11.15).
pub const BY_ID_LIMIT: usize = 100;

/// One row of `IMMessage_N` (NULL content read as empty, Q-D03). Read by position (see
/// [`crate::sql::col`]): every text producing it selects `id, relateId, fromId, toId, msgId, content,
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
    fn read_at<'a>(
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
pub struct NullableBytes(Option<Vec<u8>>);

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

/// A single-chat message to send: [`Messages::send_single`] allocates its msgId.
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

/// Outcome of [`Messages::send_single`] once its msgId was allocated.
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

/// Newest visible message of a conversation (§10.5).
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

/// Redis key of the single-chat counter.
pub fn single_counter_key(relate_id: u32) -> String {
    format!("msg_id_{relate_id}")
}

/// Redis key of the group counter.
pub fn group_counter_key(group_id: u32) -> String {
    format!("group_msg_id_{group_id}")
}

/// INCRBY 1 only when the counter exists; nil otherwise.
const INCR_IF_EXISTS: Script = Script {
    name: "msg_id incr_if_exists",
    source: "if redis.call('EXISTS', KEYS[1]) == 1 then \
               return redis.call('INCRBY', KEYS[1], 1) \
             end \
             return false",
};

/// Raise the counter to at least ARGV[1] (seed from MySQL), then INCRBY 1.
const SEED_AND_INCR: Script = Script {
    name: "msg_id seed_and_incr",
    source: "local cur = tonumber(redis.call('GET', KEYS[1]) or '-1') or -1 \
             local seed = tonumber(ARGV[1]) \
             if cur < seed then redis.call('SET', KEYS[1], ARGV[1]) end \
             return redis.call('INCRBY', KEYS[1], 1)",
};

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

/// Repository of the sharded message tables and their id counters. Obtain with
/// [`Store::messages`].
#[derive(Clone, Copy)]
pub struct Messages<'a> {
    store: &'a Store,
}

impl Store {
    /// Message repository (IMMessage_0..7, IMGroupMessage_0..7, id counters).
    pub fn messages(&self) -> Messages<'_> {
        Messages { store: self }
    }
}

/// INCRBY 1 of every counter that exists, in KEYS order (a key given twice is incremented
/// twice); 0 for a missing one, which the caller seeds.
const INCR_MANY_IF_EXIST: Script = Script {
    name: "msg_id incr_many_if_exist",
    source: "local out = {} \
             for i, k in ipairs(KEYS) do \
               if redis.call('EXISTS', k) == 1 then out[i] = redis.call('INCRBY', k, 1) \
               else out[i] = 0 end \
             end \
             return out",
};

/// HINCRBY KEYS[i] ARGV[i] 1 for every i: the unread counters of a batch of messages.
const HINCR_MANY: Script = Script {
    name: "unread hincr_many",
    source: "for i, k in ipairs(KEYS) do redis.call('HINCRBY', k, ARGV[i], 1) end \
             return #KEYS",
};

/// Next value of the counter `key` (see [`Messages::allocate_single`]); `max_sql` reads the
/// highest stored msgId of `id` when the counter is missing.
async fn allocate_on(
    cache: &Cache,
    pools: &Pools,
    key: String,
    max_sql: &'static str,
    id: u32,
) -> Result<u32> {
    let keys = [key];
    let mut v = cache.eval(&INCR_IF_EXISTS, &keys, &[]).await?.as_i64();
    if v.is_none() {
        // Counter lost (or never created): seed from the highest stored msgId (master).
        let max: MaxRow = pools
            .master(async |c| {
                diesel::sql_query(max_sql)
                    .bind::<Unsigned<Integer>, _>(id)
                    .cached()
                    .get_result(c)
                    .await
                    .ctx("MAX(msgId)")
            })
            .await?;
        v = cache
            .eval(&SEED_AND_INCR, &keys, &[max.v.to_string()])
            .await?
            .as_i64();
    }
    msg_id_in_range(&keys[0], v)
}

/// A counter value usable as a msgId: 1..=u32::MAX (Q-M04: never 0 or wrapped).
fn msg_id_in_range(key: &str, v: Option<i64>) -> Result<u32> {
    match v.map(u32::try_from) {
        Some(Ok(n)) if n > 0 => Ok(n),
        _ => Err(Error::Redis {
            context: format!("allocate {key}"),
            message: format!("counter out of range: {v:?}"),
        }),
    }
}

impl Messages<'_> {
    async fn allocate(&self, key: String, max_sql: &'static str, id: u32) -> Result<u32> {
        allocate_on(self.store.unread(), self.store.pools(), key, max_sql, id).await
    }

    /// Next msgId of the pair `relate_id`: INCRBY `msg_id_<R>`; when the key is missing it is
    /// first raised to MAX(msgId) of `IMMessage_<R % 8>` for R (master). Never returns 0 or
    /// a wrapped value (errors instead, Q-M04).
    pub async fn allocate_single(&self, relate_id: u32) -> Result<u32> {
        self.allocate(
            single_counter_key(relate_id),
            MAX_SINGLE[shard_of(relate_id)],
            relate_id,
        )
        .await
    }

    /// Next msgId of group `group_id` (`group_msg_id_<G>`, seeded from `IMGroupMessage_<G % 8>`).
    pub async fn allocate_group(&self, group_id: u32) -> Result<u32> {
        self.allocate(
            group_counter_key(group_id),
            MAX_GROUP[shard_of(group_id)],
            group_id,
        )
        .await
    }

    /// Store a single message and bump `IMRecentSession.updated = session_time` of the given
    /// session ids (0s ignored) in ONE master transaction: either all is written or nothing.
    /// The sessions are bumped by one statement in id order; a transaction rolled back by a
    /// deadlock or lock wait timeout is run again (up to 4 attempts in all).
    /// Writes `IMMessage_<relate_id % 8>` and `IMRecentSession`.
    pub async fn store_single(
        &self,
        m: &NewSingleMessage<'_>,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<()> {
        let job = OwnedSingle {
            relate_id: m.relate_id,
            from_id: m.from_id,
            to_id: m.to_id,
            msg_id: Some(m.msg_id),
            content: m.content.to_vec(),
            kind: m.kind,
            created: m.created,
            sessions: sessions.to_vec(),
            session_time,
        };
        match self.store.batches().store_single.call(job).await? {
            Sent::Stored(_) => Ok(()),
            Sent::NotStored { error, .. } => Err(error),
        }
    }

    /// Send a single message: allocate its msgId (as [`Self::allocate_single`]), store it
    /// with the session bumps (as [`Self::store_single`]), then HINCRBY `unread_<to>`
    /// `<from>` 1. Concurrent sends share one EVAL for their ids, one transaction and one
    /// EVAL for their counters. `Err`: no id was allocated, nothing written. Otherwise
    /// [`Sent::Stored`] once the row is committed, or [`Sent::NotStored`] (id used, nothing
    /// stored). A failed counter increment is logged, not returned: the message is durable
    /// by then. Writes `msg_id_<R>`, `IMMessage_<R % 8>`, `IMRecentSession`, `unread_<to>`.
    pub async fn send_single(
        &self,
        m: &OutgoingSingle<'_>,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<Sent> {
        let job = OwnedSingle {
            relate_id: m.relate_id,
            from_id: m.from_id,
            to_id: m.to_id,
            msg_id: None,
            content: m.content.to_vec(),
            kind: m.kind,
            created: m.created,
            sessions: sessions.to_vec(),
            session_time,
        };
        self.store.batches().store_single.call(job).await
    }

    /// Store a group message, set `IMGroup.lastChated = now` of the group and bump the given
    /// session ids to `session_time`, in ONE master transaction (retried on deadlock / lock
    /// wait timeout like [`Self::store_single`]).
    /// Writes `IMGroupMessage_<group_id % 8>`, `IMGroup`, `IMRecentSession`.
    pub async fn store_group(
        &self,
        m: &NewGroupMessage<'_>,
        now: u32,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<()> {
        let sql = INSERT_GROUP[shard_of(m.group_id)];
        with_retry("store_group", || {
            self.store.master_tx(async |c| {
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
                bump_sessions(c, sessions, session_time).await
            })
        })
        .await
    }

    /// Message list of a pair (§11.13): status 0, `msgId <= begin` when begin ≠ 0, newest
    /// first (created desc, id desc — Q-D07), at most `count` rows (uncapped, Q-D09; 0 →
    /// empty). Reads `IMMessage_<relate_id % 8>` on slave with FORCE INDEX
    /// (idx_relateId_status_created).
    pub async fn list_single(
        &self,
        relate_id: u32,
        begin: u32,
        count: u32,
    ) -> Result<Vec<SingleMessage>> {
        if count == 0 || relate_id == 0 {
            return Ok(Vec::new());
        }
        self.store
            .slave(async |c| list_single_on(c, relate_id, begin, count).await)
            .await
    }

    /// [`Self::list_single`] of the pair {a, b}: its active relation (`IMRelationShip`, unless
    /// read or created within `StoreConfig::relation_ids_ttl`) and the page
    /// (`IMMessage_<R % 8>`) in ONE slave unit of work, coalesced with concurrent calls. No
    /// relation → empty.
    pub async fn list_single_between(
        &self,
        a: u32,
        b: u32,
        begin: u32,
        count: u32,
    ) -> Result<Vec<SingleMessage>> {
        if count == 0 || a == 0 || b == 0 || a == b {
            return Ok(Vec::new());
        }
        self.store
            .batches()
            .list_single
            .call(PageReq { a, b, begin, count })
            .await
    }

    /// Message list of a group for a member who joined at `join_time` (§11.13): status 0,
    /// `created >= join_time`, `msgId <= begin` when begin ≠ 0, newest first, at most
    /// `count`. Reads `IMGroupMessage_<group_id % 8>` on slave. Membership is the caller's job.
    pub async fn list_group(
        &self,
        group_id: u32,
        join_time: u32,
        begin: u32,
        count: u32,
    ) -> Result<Vec<GroupMessage>> {
        if count == 0 || group_id == 0 {
            return Ok(Vec::new());
        }
        let sql = LIST_GROUP[shard_of(group_id)];
        self.store
            .slave(async |c| {
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

    /// Messages of a pair by msgId (§11.15): status 0, `msgId IN ids`, newest first, at most
    /// 100. Empty `ids` → empty. Reads `IMMessage_<relate_id % 8>` on slave.
    pub async fn by_ids_single(&self, relate_id: u32, ids: &[u32]) -> Result<Vec<SingleMessage>> {
        let ids = dedup_ids(ids);
        if ids.is_empty() || relate_id == 0 {
            return Ok(Vec::new());
        }
        let sql = in_list_sql(BY_IDS_SINGLE[shard_of(relate_id)], ids.len(), BY_IDS_TAIL);
        self.store
            .slave(async |c| {
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

    /// Group messages by msgId for a member who joined at `join_time` (§11.15): status 0,
    /// `created >= join_time`, newest first, at most 100. Reads `IMGroupMessage_<G % 8>` on slave.
    pub async fn by_ids_group(
        &self,
        group_id: u32,
        join_time: u32,
        ids: &[u32],
    ) -> Result<Vec<GroupMessage>> {
        let ids = dedup_ids(ids);
        if ids.is_empty() || group_id == 0 {
            return Ok(Vec::new());
        }
        let sql = in_list_sql(BY_IDS_GROUP[shard_of(group_id)], ids.len(), BY_IDS_TAIL);
        self.store
            .slave(async |c| {
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

    /// Newest visible messages of many conversations of `user` (§10.5, for §11.4 and §11.12):
    /// the active relations with all `peers` (`IMRelationShip`, except those read or created
    /// within `StoreConfig::relation_ids_ttl`), the newest status-0 row of
    /// each relation (`IMMessage_<R % 8>`) and of each of `groups` (`IMGroupMessage_<G % 8>`,
    /// no join-time filter, Q-M12). Coalesced with concurrent calls into one slave unit of
    /// work (see `newest_coalescer`). The results follow the input order (one entry per peer /
    /// group, duplicates kept), `None` where there is no relation or no message.
    pub async fn newest_many(
        &self,
        user: u32,
        peers: &[u32],
        groups: &[u32],
    ) -> Result<(Vec<Option<Newest>>, Vec<Option<Newest>>)> {
        if peers.is_empty() && groups.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.store
            .batches()
            .newest
            .call(NewestReq {
                user,
                peers: peers.to_vec(),
                groups: groups.to_vec(),
            })
            .await
    }

    async fn newest(
        &self,
        sql: &'static str,
        id: u32,
        what: &'static str,
    ) -> Result<Option<Newest>> {
        if id == 0 {
            return Ok(None);
        }
        let rows: Vec<NewestRow> = self
            .store
            .slave(async |c| {
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

    /// Newest visible message of the pair `relate_id` (§10.5; the voice placeholder is the
    /// caller's job). Reads `IMMessage_<relate_id % 8>` on slave.
    pub async fn newest_single(&self, relate_id: u32) -> Result<Option<Newest>> {
        self.newest(
            NEWEST_SINGLE[shard_of(relate_id)],
            relate_id,
            "IMMessage newest",
        )
        .await
    }

    /// Newest visible message of group `group_id` (no join-time filter, Q-M12).
    /// Reads `IMGroupMessage_<group_id % 8>` on slave.
    pub async fn newest_group(&self, group_id: u32) -> Result<Option<Newest>> {
        self.newest(
            NEWEST_GROUP[shard_of(group_id)],
            group_id,
            "IMGroupMessage newest",
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Storage

const INSERT_GROUP: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "INSERT INTO ",
    " (groupId, userId, msgId, content, type, status, updated, created) \
     VALUES (?, ?, ?, ?, ?, 0, ?, ?)"
);

/// A single message queued for the write coalescer (see [`store_single_coalescer`]).
pub(crate) struct OwnedSingle {
    relate_id: u32,
    from_id: u32,
    to_id: u32,
    /// `None`: a send; the batch allocates the id and counts the message as unread.
    msg_id: Option<u32>,
    content: Vec<u8>,
    kind: u8,
    created: u32,
    sessions: Vec<u32>,
    session_time: u32,
}

/// Most rows per multi-row INSERT. A shard's rows of a batch go in chunks of this many and
/// one chunk of the rest, each with the INSERT text of exactly its size: one statement (one
/// round trip) per shard for up to 8 rows, and at most 8 prepared INSERT texts per shard.
const INSERT_MAX_ROWS: usize = 8;

/// `INSERT INTO IMMessage_<s> (...) VALUES (...), (...)` with `n` rows.
fn insert_single_sql(shard: usize, n: usize) -> String {
    let mut sql = format!(
        "INSERT INTO {} (relateId, fromId, toId, msgId, content, status, type, created, updated) \
         VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        crate::shard::MESSAGE_TABLES[shard]
    );
    for _ in 1..n {
        sql.push_str(", (?, ?, ?, ?, ?, 0, ?, ?, ?)");
    }
    sql
}

/// Coalescer behind [`Messages::store_single`] and [`Messages::send_single`]: the messages
/// of concurrent calls get their missing ids from one EVAL, are stored in ONE master
/// transaction (multi-row INSERTs per shard, one session UPDATE per distinct session time,
/// one commit and log flush for all), and the sends among them are counted as unread by
/// one EVAL after the commit. The transaction is retried on a lock conflict; if it still
/// fails, each message is stored alone, so one bad row only fails its own request. Every
/// caller is answered only after its row is committed.
pub(crate) fn store_single_coalescer(
    pools: Pools,
    unread: Cache,
    shape: crate::batch::Shape,
    timings: &crate::timing::Timings,
) -> crate::batch::Coalescer<OwnedSingle, Sent> {
    let stages = std::sync::Arc::new([
        timings.stage("store_single: ids"),
        timings.stage("store_single: transaction"),
        timings.stage("store_single: unread counters"),
    ]);
    let texts: std::sync::Arc<Vec<Vec<String>>> = std::sync::Arc::new(
        (0..8)
            .map(|shard| {
                (1..=INSERT_MAX_ROWS)
                    .map(|n| insert_single_sql(shard, n))
                    .collect()
            })
            .collect(),
    );
    let run = move |jobs: Vec<OwnedSingle>, mut held: crate::batch::Held| {
        let pools = pools.clone();
        let unread = unread.clone();
        let texts = texts.clone();
        let stages = stages.clone();
        async move {
            let [ids_stage, store_stage, count_stage] = &*stages;
            let n = jobs.len();
            let mut out: Vec<Option<Result<Sent>>> = (0..n).map(|_| None).collect();
            // Sends come without an id; they are also counted as unread once stored.
            let is_send: Vec<bool> = jobs.iter().map(|j| j.msg_id.is_none()).collect();
            // Ids first; a message without one is not stored.
            let ids = ids_stage
                .time(n, allocate_many(&unread, &pools, &jobs))
                .await;
            let mut ready: Vec<OwnedSingle> = Vec::with_capacity(n);
            let mut ready_at: Vec<usize> = Vec::with_capacity(n);
            for (i, (mut job, id)) in jobs.into_iter().zip(ids).enumerate() {
                match id {
                    Ok(id) => {
                        job.msg_id = Some(id);
                        ready.push(job);
                        ready_at.push(i);
                    }
                    Err(e) => out[i] = Some(Err(e)),
                }
            }
            let stored = store_stage
                .time(ready.len(), store_batch(&pools, &texts, &ready))
                .await;
            // MySQL is done: the next batch may start while this one counts in Redis.
            held.release();
            let counted: Vec<&OwnedSingle> = ready
                .iter()
                .zip(&ready_at)
                .zip(&stored)
                .filter(|((_, &i), r)| is_send[i] && r.is_ok())
                .map(|((job, _), _)| job)
                .collect();
            if !counted.is_empty() {
                count_stage
                    .time(counted.len(), count_unread(&unread, &counted))
                    .await;
            }
            for ((job, i), result) in ready.iter().zip(ready_at).zip(stored) {
                let msg_id = job.msg_id.unwrap_or(0);
                out[i] = Some(Ok(match result {
                    Ok(()) => Sent::Stored(msg_id),
                    Err(error) => Sent::NotStored { msg_id, error },
                }));
            }
            out.into_iter()
                .map(|r| r.unwrap_or_else(|| Err(Error::Invalid("message left unanswered".into()))))
                .collect()
        }
    };
    crate::batch::Coalescer::spawn_held("store_single", shape, timings, run)
}

/// The ids of a batch: given ones kept, missing ones from one EVAL over their counters
/// (a pair sending twice gets two consecutive ids), a counter that does not exist seeded
/// alone as [`allocate_on`] does. One result per job, in order.
async fn allocate_many(cache: &Cache, pools: &Pools, jobs: &[OwnedSingle]) -> Vec<Result<u32>> {
    let wanted: Vec<usize> = (0..jobs.len())
        .filter(|&i| jobs[i].msg_id.is_none())
        .collect();
    let mut out: Vec<Result<u32>> = jobs.iter().map(|j| Ok(j.msg_id.unwrap_or(0))).collect();
    if wanted.is_empty() {
        return out;
    }
    let keys: Vec<String> = wanted
        .iter()
        .map(|&i| single_counter_key(jobs[i].relate_id))
        .collect();
    let values = match cache.eval(&INCR_MANY_IF_EXIST, &keys, &[]).await {
        Ok(ScriptValue::List(values)) if values.len() == keys.len() => Ok(values),
        Ok(other) => Err(Error::Redis {
            context: format!("allocate {} ids", keys.len()),
            message: format!("unexpected script result: {other:?}"),
        }),
        Err(e) => Err(e),
    };
    let values = match values {
        Ok(values) => values,
        Err(e) => {
            for &i in &wanted {
                out[i] = Err(e.duplicate());
            }
            return out;
        }
    };
    for ((&i, key), value) in wanted.iter().zip(keys).zip(values) {
        out[i] = match value.as_i64() {
            Some(0) => {
                let rel = jobs[i].relate_id;
                allocate_on(cache, pools, key, MAX_SINGLE[shard_of(rel)], rel).await
            }
            v => msg_id_in_range(&key, v),
        };
    }
    out
}

/// Store `jobs` (ids set) in one transaction, retried on a lock conflict; when a statement
/// of it failed, one by one. One result per job.
async fn store_batch(
    pools: &Pools,
    texts: &[Vec<String>],
    jobs: &[OwnedSingle],
) -> Vec<Result<()>> {
    let n = jobs.len();
    if n == 0 {
        return Vec::new();
    }
    let together = with_retry("store_single", || {
        pools.master_tx(async |c| store_singles_on(c, texts, jobs).await)
    })
    .await;
    match together {
        Ok(()) => (0..n).map(|_| Ok(())).collect(),
        // Unknown outcome (the COMMIT or the whole unit may have reached the server):
        // storing the messages again could duplicate them, so every caller gets the error.
        // Likewise for a lone message.
        Err(e) if n == 1 || !rolled_back(&e) => crate::batch::fan_out(n, Err(e)),
        Err(e) => {
            tracing::warn!(error = %e, n, "message batch failed; storing one by one");
            let mut out = Vec::with_capacity(n);
            for job in jobs {
                let one = std::slice::from_ref(job);
                out.push(
                    with_retry("store_single", || {
                        pools.master_tx(async |c| store_singles_on(c, texts, one).await)
                    })
                    .await,
                );
            }
            out
        }
    }
}

/// After the commit: HINCRBY `unread_<to>` `<from>` 1 for every stored send (at least
/// one), in one EVAL. A failure is logged, not returned: the messages are durable by then.
async fn count_unread(cache: &Cache, sent: &[&OwnedSingle]) {
    let (keys, fields): (Vec<String>, Vec<String>) = sent
        .iter()
        .map(|j| (crate::unread::single_key(j.to_id), j.from_id.to_string()))
        .unzip();
    if let Err(error) = cache.eval(&HINCR_MANY, &keys, &fields).await {
        tracing::error!(%error, n = keys.len(), "unread counters not incremented");
    }
}

/// Whether a failed message transaction certainly stored nothing: a statement inside it
/// failed (the transaction was rolled back), as opposed to a failed or timed-out COMMIT or
/// a timeout of the whole unit, whose outcome is unknown.
fn rolled_back(e: &Error) -> bool {
    match e {
        Error::Mysql { context, .. } => context != "COMMIT",
        Error::Invalid(_) | Error::NotFound(_) => true,
        // No connection: nothing was sent, but storing one by one would only wait again.
        Error::Pool { .. } | Error::Timeout { .. } | Error::Redis { .. } | Error::Http { .. } => {
            false
        }
    }
}

/// The statements of one message batch, inside the caller's transaction.
async fn store_singles_on(
    c: &mut DbConn,
    texts: &[Vec<String>],
    jobs: &[OwnedSingle],
) -> Result<()> {
    for (shard, shard_texts) in texts.iter().enumerate() {
        let rows: Vec<&OwnedSingle> = jobs
            .iter()
            .filter(|j| shard_of(j.relate_id) == shard)
            .collect();
        for chunk in rows.chunks(INSERT_MAX_ROWS) {
            let mut q =
                diesel::sql_query(shard_texts[chunk.len() - 1].as_str()).into_boxed::<Mysql>();
            for m in chunk {
                // Ids are allocated before the transaction; never store one without.
                let msg_id = m
                    .msg_id
                    .ok_or_else(|| Error::Invalid("message without a msgId".into()))?;
                q = q
                    .bind::<Unsigned<Integer>, _>(m.relate_id)
                    .bind::<Unsigned<Integer>, _>(m.from_id)
                    .bind::<Unsigned<Integer>, _>(m.to_id)
                    .bind::<Unsigned<Integer>, _>(msg_id)
                    .bind::<Binary, _>(m.content.as_slice())
                    .bind::<Unsigned<TinyInt>, _>(m.kind)
                    .bind::<Unsigned<Integer>, _>(m.created)
                    .bind::<Unsigned<Integer>, _>(m.created);
            }
            q.cached().execute(c).await.ctx("IMMessage insert")?;
        }
    }
    // Session bumps: one statement per distinct time, oldest first, so a session of two
    // messages ends with the later time (as sequential sends would leave it).
    let mut times: Vec<u32> = jobs.iter().map(|j| j.session_time).collect();
    times.sort_unstable();
    times.dedup();
    for t in times {
        let ids: Vec<u32> = jobs
            .iter()
            .filter(|j| j.session_time == t)
            .flat_map(|j| j.sessions.iter().copied())
            .collect();
        bump_sessions(c, &ids, t).await?;
    }
    Ok(())
}

async fn bump_sessions(c: &mut DbConn, sessions: &[u32], t: u32) -> Result<()> {
    session::bump_on(c, sessions, t).await.map(|_| ())
}

/// Attempts of a message transaction that lost a deadlock / lock wait (1213 / 1205).
const TX_ATTEMPTS: u32 = 4;

/// Run the message transaction built by `make` again (fresh closure, fresh transaction)
/// when MariaDB rolled it back for a lock conflict; at most [`TX_ATTEMPTS`] times.
async fn with_retry<F, Fut>(what: &'static str, mut make: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut attempt = 1;
    loop {
        match make().await {
            Err(e) if e.is_lock_conflict() && attempt < TX_ATTEMPTS => {
                tracing::debug!(what, attempt, error = %e, "lock conflict; transaction retried");
                attempt += 1;
            }
            other => return other,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reads (slave)

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

async fn list_single_on(
    c: &mut DbConn,
    relate_id: u32,
    begin: u32,
    count: u32,
) -> Result<Vec<SingleMessage>> {
    if count == 0 || relate_id == 0 {
        return Ok(Vec::new());
    }
    diesel::sql_query(LIST_SINGLE[shard_of(relate_id)])
        .bind::<Unsigned<Integer>, _>(relate_id)
        .bind::<Unsigned<Integer>, _>(begin)
        .bind::<Unsigned<Integer>, _>(begin)
        .bind::<Unsigned<Integer>, _>(count)
        .cached()
        .load(c)
        .await
        .ctx("IMMessage list")
}

fn dedup_ids(ids: &[u32]) -> Vec<u32> {
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

/// Per-shard parts of the batched newest-message query (see [`Messages::newest_many`]).
const NEWEST_SINGLE_PART: [&str; 8] = shard_sql!(
    IMMessage,
    "SELECT relateId AS k, msgId, type, fromId, content FROM ",
    " WHERE relateId = ? AND status = 0 ORDER BY created DESC, id DESC LIMIT 1"
);
const NEWEST_GROUP_PART: [&str; 8] = shard_sql!(
    IMGroupMessage,
    "SELECT groupId AS k, msgId, type, userId AS fromId, content FROM ",
    " WHERE groupId = ? AND status = 0 ORDER BY created DESC, id DESC LIMIT 1"
);

static NEWEST_SINGLE_SLOTS: std::sync::LazyLock<ShardSlots> =
    std::sync::LazyLock::new(|| ShardSlots::new(&NEWEST_SINGLE_PART, Padding::Probe));
static NEWEST_GROUP_SLOTS: std::sync::LazyLock<ShardSlots> =
    std::sync::LazyLock::new(|| ShardSlots::new(&NEWEST_GROUP_PART, Padding::Probe));

/// Newest message of many relations, one part per shard: each relation id of the list
/// (rows of `IMRelationShip`, found just before) joined to its newest row by a dependent
/// subquery, the same `ORDER BY created DESC, id DESC LIMIT 1` as the single read.
static NEWEST_SINGLE_LISTS: std::sync::LazyLock<ShardLists> = std::sync::LazyLock::new(|| {
    ShardLists::new(|s| {
        format!(
            "SELECT m.relateId AS k, m.msgId, m.type, m.fromId, m.content \
             FROM IMRelationShip r JOIN IMMessage_{s} m ON m.id = \
             (SELECT i.id FROM IMMessage_{s} i WHERE i.relateId = r.id AND i.status = 0 \
             ORDER BY i.created DESC, i.id DESC LIMIT 1) \
             WHERE r.id IN ({{in}})"
        )
    })
});

/// From this many relations on, [`NEWEST_SINGLE_LISTS`] (8 parts whatever the count) costs
/// MariaDB less than one slot part per relation (see [`ShardLists`]). Below it the lists are
/// also used when the slot texts would need a one-off text (see [`ShardSlots::plan`]): the
/// parts of shards without ids match nothing at little cost, and a prepared text saves the
/// one-off's prepare and close round trips (6 relations in 2 shards, from the `mariadb` CLI:
/// ~170 µs of MariaDB CPU as lists, ~200 µs as a one-off text before its two extra round trips).
const NEWEST_LISTS_FROM: usize = 16;

/// A newest-message row of a batch, by position: `k` (relation or group id), `msgId`,
/// `type`, `fromId`, `content` (the order of every newest part and list text).
struct KeyedNewestRow {
    k: u32,
    msg_id: u32,
    kind: u8,
    from_id: u32,
    content: Vec<u8>,
}

impl QueryableByName<Mysql> for KeyedNewestRow {
    fn build<'a>(row: &impl diesel::row::NamedRow<'a, Mysql>) -> diesel::deserialize::Result<Self> {
        Ok(KeyedNewestRow {
            k: col::<Unsigned<Integer>, _>(row, 0)?,
            msg_id: col::<Unsigned<Integer>, _>(row, 1)?,
            kind: col::<Unsigned<TinyInt>, _>(row, 2)?,
            from_id: col::<Unsigned<Integer>, _>(row, 3)?,
            content: col::<Nullable<Binary>, NullableBytes>(row, 4)?.into(),
        })
    }
}

/// Newest row of each id, through the fixed [`ShardSlots`] texts of `slots`, or, where
/// given, the [`ShardLists`] texts of `lists` from [`NEWEST_LISTS_FROM`] ids on or when the
/// slots would need a one-off text (ids bound to their shard's slots or list, padding bound
/// to 0, which matches nothing).
async fn newest_batch_on(
    c: &mut DbConn,
    slots: &ShardSlots,
    lists: Option<&ShardLists>,
    ids: &[u32],
    what: &'static str,
) -> Result<std::collections::HashMap<u32, Newest>> {
    let ids: Vec<u32> = dedup_ids(ids).into_iter().filter(|&id| id != 0).collect();
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    let shards: Vec<usize> = ids.iter().map(|&id| shard_of(id)).collect();
    let plans = match lists {
        Some(lists) if ids.len() >= NEWEST_LISTS_FROM || slots.needs_one_off(&shards) => {
            lists.plan(&shards)
        }
        _ => slots.plan(&shards),
    };
    for plan in plans {
        let mut q = diesel::sql_query(plan.sql.as_ref()).into_boxed::<Mysql>();
        for item in &plan.items {
            q = q.bind::<Unsigned<Integer>, _>(item.and_then(|i| ids.get(i).copied()).unwrap_or(0));
        }
        let rows: Vec<KeyedNewestRow> = if plan.prepared {
            q.cached().load(c).await
        } else {
            q.load(c).await
        }
        .ctx(what)?;
        for r in rows {
            out.insert(
                r.k,
                Newest {
                    msg_id: r.msg_id,
                    kind: r.kind,
                    from_id: r.from_id,
                    content: r.content,
                },
            );
        }
    }
    Ok(out)
}

/// A request of the newest-message coalescer (see [`newest_coalescer`]).
pub(crate) struct NewestReq {
    user: u32,
    peers: Vec<u32>,
    groups: Vec<u32>,
}

/// Newest messages of each request's peers and groups, in input order.
pub(crate) type NewestLists = (Vec<Option<Newest>>, Vec<Option<Newest>>);

/// Coalescer behind [`Messages::newest_many`]: concurrent calls (unread counts, recent
/// session lists) share one slave unit of work: the relations of all (user, peer) pairs,
/// then the newest row of every relation and group through the fixed [`ShardSlots`] texts.
pub(crate) fn newest_coalescer(
    pools: crate::store::Pools,
    shape: crate::batch::Shape,
    relation_ids: std::sync::Arc<crate::relation::RelationIds>,
    timings: &crate::timing::Timings,
) -> crate::batch::Coalescer<NewestReq, NewestLists> {
    let stages = ReadStages::new(timings, "newest", relation_ids);
    crate::batch::Coalescer::spawn("newest", shape, timings, move |reqs: Vec<NewestReq>| {
        let pools = pools.clone();
        let stages = stages.clone();
        async move {
            let n = reqs.len();
            let outcome = pools
                .slave(async |c| newest_lists_on(c, &stages, &reqs).await)
                .await;
            crate::batch::fan_out(n, outcome)
        }
    })
}

/// The two steps of a batched read, timed (see [`crate::timing`]): `<name>: relations` (the
/// relation of every pair, from the remembered ids or one `IMRelationShip` statement) and
/// `<name>: rows` (the message statements).
#[derive(Clone)]
struct ReadStages {
    relation_ids: std::sync::Arc<crate::relation::RelationIds>,
    relations: std::sync::Arc<crate::timing::Stage>,
    rows: std::sync::Arc<crate::timing::Stage>,
}

impl ReadStages {
    fn new(
        timings: &crate::timing::Timings,
        name: &str,
        relation_ids: std::sync::Arc<crate::relation::RelationIds>,
    ) -> Self {
        ReadStages {
            relation_ids,
            relations: timings.stage(&format!("{name}: relations")),
            rows: timings.stage(&format!("{name}: rows")),
        }
    }

    /// The active relation of each `(smallId, bigId)` pair, timed as `<name>: relations`.
    async fn relations_on(
        &self,
        c: &mut DbConn,
        n: usize,
        pairs: &[(u32, u32)],
    ) -> Result<std::collections::HashMap<(u32, u32), u32>> {
        self.relations
            .time(n, self.relation_ids.find_pairs_on(c, pairs))
            .await
    }
}

async fn newest_lists_on(
    c: &mut DbConn,
    stages: &ReadStages,
    reqs: &[NewestReq],
) -> Result<Vec<NewestLists>> {
    let pairs: Vec<(u32, u32)> = reqs
        .iter()
        .flat_map(|r| {
            r.peers
                .iter()
                .filter_map(|&p| crate::relation::pair(r.user, p))
        })
        .collect();
    let rels = stages.relations_on(c, reqs.len(), &pairs).await?;
    let rel_of = |user: u32, peer: u32| {
        crate::relation::pair(user, peer).and_then(|k| rels.get(&k).copied())
    };
    let rel_ids: Vec<u32> = reqs
        .iter()
        .flat_map(|r| r.peers.iter().filter_map(|&p| rel_of(r.user, p)))
        .collect();
    let group_ids: Vec<u32> = reqs.iter().flat_map(|r| r.groups.iter().copied()).collect();
    let rows = async {
        let singles = if rel_ids.is_empty() {
            Default::default()
        } else {
            newest_batch_on(
                c,
                &NEWEST_SINGLE_SLOTS,
                Some(&NEWEST_SINGLE_LISTS),
                &rel_ids,
                "IMMessage newest many",
            )
            .await?
        };
        let group_rows = if group_ids.is_empty() {
            Default::default()
        } else {
            newest_batch_on(
                c,
                &NEWEST_GROUP_SLOTS,
                None,
                &group_ids,
                "IMGroupMessage newest many",
            )
            .await?
        };
        Ok::<_, Error>((singles, group_rows))
    };
    let (singles, group_rows) = stages.rows.time(reqs.len(), rows).await?;
    Ok(reqs
        .iter()
        .map(|r| {
            let single_out = r
                .peers
                .iter()
                .map(|&p| rel_of(r.user, p).and_then(|rel| singles.get(&rel)).cloned())
                .collect();
            let group_out = r
                .groups
                .iter()
                .map(|g| group_rows.get(g).cloned())
                .collect();
            (single_out, group_out)
        })
        .collect())
}

/// A page request of the fetch coalescer (see [`list_single_coalescer`]).
pub(crate) struct PageReq {
    a: u32,
    b: u32,
    begin: u32,
    count: u32,
}

const LIST_SINGLE_PART: [&str; 8] = shard_sql!(
    IMMessage,
    "SELECT CAST({k} AS SIGNED) AS slot, id, relateId, fromId, toId, msgId, content, type, \
     status, created, updated FROM ",
    " FORCE INDEX (idx_relateId_status_created) WHERE relateId = ? AND status = 0 \
     AND (? = 0 OR msgId <= ?) ORDER BY created DESC, id DESC LIMIT ?"
);

/// A page row tagged with its slot: `slot` then the [`SingleMessage`] columns.
struct SlottedSingle {
    slot: i64,
    msg: SingleMessage,
}

impl QueryableByName<Mysql> for SlottedSingle {
    fn build<'a>(row: &impl diesel::row::NamedRow<'a, Mysql>) -> diesel::deserialize::Result<Self> {
        Ok(SlottedSingle {
            slot: col::<BigInt, _>(row, 0)?,
            msg: SingleMessage::read_at(row, 1)?,
        })
    }
}

/// Coalescer behind [`Messages::list_single_between`]: the pages of concurrent fetches are
/// read with one slave unit of work: the relations of all pairs not remembered
/// ([`crate::relation::RelationIds`]) in one `IMRelationShip`
/// statement, then the pages through the fixed [`ShardSlots`] texts over
/// `IMMessage_0..7` (one statement per 8 pages of one shard).
pub(crate) fn list_single_coalescer(
    pools: crate::store::Pools,
    shape: crate::batch::Shape,
    relation_ids: std::sync::Arc<crate::relation::RelationIds>,
    timings: &crate::timing::Timings,
) -> crate::batch::Coalescer<PageReq, Vec<SingleMessage>> {
    let slots = std::sync::Arc::new(ShardSlots::new(&LIST_SINGLE_PART, Padding::Stop));
    let stages = ReadStages::new(timings, "list_single", relation_ids);
    crate::batch::Coalescer::spawn("list_single", shape, timings, move |reqs: Vec<PageReq>| {
        let pools = pools.clone();
        let slots = slots.clone();
        let stages = stages.clone();
        async move {
            let n = reqs.len();
            let outcome = pools
                .slave(async |c| list_pages_on(c, &slots, &stages, &reqs).await)
                .await;
            crate::batch::fan_out(n, outcome)
        }
    })
}

async fn list_pages_on(
    c: &mut DbConn,
    slots: &ShardSlots,
    stages: &ReadStages,
    reqs: &[PageReq],
) -> Result<Vec<Vec<SingleMessage>>> {
    let pairs: Vec<(u32, u32)> = reqs
        .iter()
        .filter_map(|r| crate::relation::pair(r.a, r.b))
        .collect();
    let rels = stages.relations_on(c, reqs.len(), &pairs).await?;
    // (request index, relation) of the requests that have a relation.
    let todo: Vec<(usize, u32)> = reqs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let key = crate::relation::pair(r.a, r.b)?;
            rels.get(&key).map(|&rel| (i, rel))
        })
        .collect();
    let shards: Vec<usize> = todo.iter().map(|&(_, rel)| shard_of(rel)).collect();
    let pages = async {
        let mut out: Vec<Vec<SingleMessage>> = (0..reqs.len()).map(|_| Vec::new()).collect();
        for plan in slots.plan(&shards) {
            let mut q = diesel::sql_query(plan.sql.as_ref()).into_boxed::<Mysql>();
            for item in &plan.items {
                let (rel, begin, count) = match item.and_then(|t| todo.get(t)) {
                    Some(&(i, rel)) => (rel, reqs[i].begin, reqs[i].count),
                    // Padding: LIMIT 0, which MariaDB answers before reading (Padding::Stop).
                    None => (0, 0, 0),
                };
                q = q
                    .bind::<Unsigned<Integer>, _>(rel)
                    .bind::<Unsigned<Integer>, _>(begin)
                    .bind::<Unsigned<Integer>, _>(begin)
                    .bind::<Unsigned<Integer>, _>(count);
            }
            let rows: Vec<SlottedSingle> = if plan.prepared {
                q.cached().load(c).await
            } else {
                q.load(c).await
            }
            .ctx("IMMessage list (batch)")?;
            for r in rows {
                let target = usize::try_from(r.slot)
                    .ok()
                    .and_then(|tag| plan.items.get(tag).copied().flatten())
                    .and_then(|t| todo.get(t))
                    .map(|&(i, _)| i);
                if let Some(i) = target {
                    out[i].push(r.msg);
                }
            }
        }
        Ok::<_, Error>(out)
    };
    stages.rows.time(todo.len(), pages).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_certain_rollbacks_are_stored_again_one_by_one() {
        let db = |context: &str| Error::Mysql {
            context: context.into(),
            source: diesel::result::Error::BrokenTransactionManager,
        };
        assert!(rolled_back(&db("IMMessage insert")));
        assert!(rolled_back(&db("BEGIN")));
        assert!(
            !rolled_back(&db("COMMIT")),
            "a failed COMMIT may have committed"
        );
        assert!(!rolled_back(&Error::Timeout {
            what: "mysql master unit of work".into(),
            after: std::time::Duration::from_secs(5),
        }));
        assert!(!rolled_back(&Error::Pool {
            pool: "master",
            reason: "timeout".into(),
        }));
    }
}
