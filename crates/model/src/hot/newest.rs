//! The coalesced newest-message reads: the newest message of many conversations of
//! concurrent callers in one slave unit of work.

use std::sync::Arc;

use diesel::mysql::Mysql;
use diesel::sql_types::{Binary, Integer, Nullable, TinyInt, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::relation_ids::{ReadStages, RelationIds};
use crate::batch::shards::{Padding, ShardLists, ShardSlots};
use crate::batch::timing::Timings;
use crate::batch::{fan_out, Coalescer, Shape};
use crate::db::shard::{shard_of, shard_sql};
use crate::db::sql::{col, CacheExt};
use crate::db::{Db, DbConn, Pools};
use crate::error::{Error, MysqlResultExt, Result};
use crate::repo::message::{dedup_ids, Newest, NullableBytes};
use crate::repo::relation::pair;

/// Per-shard parts of the batched newest-message query (see `Messages::newest_many`).
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

/// Newest message of many groups, one part per shard: the listed groups that have messages
/// in the shard (a loose scan of the group index, no per-group part) joined to their newest
/// row by the same dependent subquery as the single read. At production sizes a part per
/// group costs MariaDB several times more than this; a `MAX(created)` per group joined back
/// was cheaper on the large population but three times dearer for batches of busy
/// conversations (BENCHMARKS.md, "Data-scale").
static NEWEST_GROUP_LISTS: std::sync::LazyLock<ShardLists> = std::sync::LazyLock::new(|| {
    ShardLists::new(|s| {
        format!(
            "SELECT m.groupId AS k, m.msgId, m.type, m.userId AS fromId, m.content \
             FROM (SELECT DISTINCT groupId FROM IMGroupMessage_{s} WHERE groupId IN ({{in}})) g \
             JOIN IMGroupMessage_{s} m ON m.id = \
             (SELECT i.id FROM IMGroupMessage_{s} i WHERE i.groupId = g.groupId AND i.status = 0 \
             ORDER BY i.created DESC, i.id DESC LIMIT 1)"
        )
    })
});

/// From this many relations or groups on, the list texts (8 parts whatever the count) cost
/// MariaDB less than one slot part per relation (see [`ShardLists`]). Below it the lists are
/// also used when the slot texts would need a one-off text (see [`ShardSlots::plan`]): the
/// parts of shards without ids match nothing at little cost, and a prepared text saves the
/// one-off's prepare and close round trips (measured in BENCHMARKS.md, "Session 7").
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

/// Newest row of each id, through the fixed [`ShardSlots`] texts of `slots`, or the
/// [`ShardLists`] texts of `lists` from [`NEWEST_LISTS_FROM`] ids on or when the
/// slots would need a one-off text (ids bound to their shard's slots or list, padding bound
/// to 0, which matches nothing).
async fn newest_batch_on(
    c: &mut DbConn,
    slots: &ShardSlots,
    lists: &ShardLists,
    ids: &[u32],
    what: &'static str,
) -> Result<std::collections::HashMap<u32, Newest>> {
    let ids: Vec<u32> = dedup_ids(ids).into_iter().filter(|&id| id != 0).collect();
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    let shards: Vec<usize> = ids.iter().map(|&id| shard_of(id)).collect();
    let plans = if ids.len() >= NEWEST_LISTS_FROM || slots.needs_one_off(&shards) {
        lists.plan(&shards)
    } else {
        slots.plan(&shards)
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

/// A request of the newest-message coalescer (see [`coalescer`]).
pub(crate) struct NewestReq {
    pub(crate) user: u32,
    pub(crate) peers: Vec<u32>,
    pub(crate) groups: Vec<u32>,
}

/// Newest messages of each request's peers and groups, in input order.
pub(crate) type NewestLists = (Vec<Option<Newest>>, Vec<Option<Newest>>);

/// Coalescer behind `Messages::newest_many`: concurrent calls (unread counts, recent
/// session lists) share one slave unit of work: the relations of all (user, peer) pairs,
/// then the newest row of every relation and group through the fixed [`ShardSlots`] texts.
pub(crate) fn coalescer(
    pools: Pools,
    shape: Shape,
    relation_ids: Arc<RelationIds>,
    timings: &Timings,
) -> Coalescer<NewestReq, NewestLists> {
    let stages = ReadStages::new(timings, "newest", relation_ids);
    Coalescer::spawn("newest", shape, timings, move |reqs: Vec<NewestReq>| {
        let pools = pools.clone();
        let stages = stages.clone();
        async move {
            let n = reqs.len();
            let outcome = pools
                .run(Db::Slave, false, async |c| {
                    newest_lists_on(c, &stages, &reqs).await
                })
                .await;
            fan_out(n, outcome)
        }
    })
}

async fn newest_lists_on(
    c: &mut DbConn,
    stages: &ReadStages,
    reqs: &[NewestReq],
) -> Result<Vec<NewestLists>> {
    let pairs: Vec<(u32, u32)> = reqs
        .iter()
        .flat_map(|r| r.peers.iter().filter_map(|&p| pair(r.user, p)))
        .collect();
    let rels = stages.relations_on(c, reqs.len(), &pairs).await?;
    let rel_of = |user: u32, peer: u32| pair(user, peer).and_then(|k| rels.get(&k).copied());
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
                &NEWEST_SINGLE_LISTS,
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
                &NEWEST_GROUP_LISTS,
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
