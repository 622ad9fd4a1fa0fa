//! The coalesced page reads: the message pages of concurrent fetches in one slave unit of
//! work.

use std::sync::Arc;

use diesel::mysql::Mysql;
use diesel::sql_types::{BigInt, Integer, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::relation_ids::{ReadStages, RelationIds};
use crate::batch::shards::{Padding, ShardSlots};
use crate::batch::timing::Timings;
use crate::batch::{fan_out, Coalescer, Shape};
use crate::db::shard::{shard_of, shard_sql};
use crate::db::sql::{col, CacheExt};
use crate::db::{Db, DbConn, Pools};
use crate::error::{Error, MysqlResultExt, Result};
use crate::repo::message::SingleMessage;
use crate::repo::relation::pair;

/// A page request of the fetch coalescer (see [`coalescer`]).
pub(crate) struct PageReq {
    pub(crate) a: u32,
    pub(crate) b: u32,
    pub(crate) begin: u32,
    pub(crate) count: u32,
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

/// Coalescer behind `Messages::list_single_between`: the pages of concurrent fetches are
/// read with one slave unit of work: the relations of all pairs not remembered
/// ([`RelationIds`]) in one `IMRelationShip`
/// statement, then the pages through the fixed [`ShardSlots`] texts over
/// `IMMessage_0..7` (one statement per 8 pages of one shard).
pub(crate) fn coalescer(
    pools: Pools,
    shape: Shape,
    relation_ids: Arc<RelationIds>,
    timings: &Timings,
) -> Coalescer<PageReq, Vec<SingleMessage>> {
    let slots = Arc::new(ShardSlots::new(&LIST_SINGLE_PART, Padding::Stop));
    let stages = ReadStages::new(timings, "list_single", relation_ids);
    Coalescer::spawn("list_single", shape, timings, move |reqs: Vec<PageReq>| {
        let pools = pools.clone();
        let slots = slots.clone();
        let stages = stages.clone();
        async move {
            let n = reqs.len();
            let outcome = pools
                .run(Db::Slave, false, async |c| {
                    list_pages_on(c, &slots, &stages, &reqs).await
                })
                .await;
            fan_out(n, outcome)
        }
    })
}

async fn list_pages_on(
    c: &mut DbConn,
    slots: &ShardSlots,
    stages: &ReadStages,
    reqs: &[PageReq],
) -> Result<Vec<Vec<SingleMessage>>> {
    let pairs: Vec<(u32, u32)> = reqs.iter().filter_map(|r| pair(r.a, r.b)).collect();
    let rels = stages.relations_on(c, reqs.len(), &pairs).await?;
    // (request index, relation) of the requests that have a relation.
    let todo: Vec<(usize, u32)> = reqs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let key = pair(r.a, r.b)?;
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
