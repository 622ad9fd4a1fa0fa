//! The coalesced send lookup: the sessions of both sides and the relation of every pair
//! of concurrent single sends, in one master statement.

use std::sync::Arc;

use diesel::sql_types::{Integer, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::relation_ids::RelationIds;
use crate::batch::texts::{pair_markers, BucketTexts};
use crate::batch::timing::Timings;
use crate::batch::{fan_out, Coalescer, Shape};
use crate::db::sql::CacheExt;
use crate::db::{Db, DbConn, Pools};
use crate::error::{MysqlResultExt, Result};
use crate::repo::relation::pair;
use crate::repo::session::SendLookup;

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
/// pairs ([`pair_markers`]; binds from, to, to, from per pair).
fn send_lookup_sessions_sql(n: usize) -> String {
    format!(
        "(SELECT CAST(1 AS SIGNED) AS kind, CAST(userId AS SIGNED) AS a, \
         CAST(peerId AS SIGNED) AS b, CAST(MAX(id) AS SIGNED) AS id FROM IMRecentSession \
         WHERE type = 1 AND status = 0 AND (userId, peerId) IN ({}) \
         GROUP BY userId, peerId)",
        pair_markers(2 * n)
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
        pair_markers(n)
    )
}

/// What every send lookup batch shares: its prepared texts (padded to fixed sizes) and the
/// remembered relation ids.
struct SendLookupShared {
    /// Sessions and relations ([`send_lookup_sql`]).
    both: BucketTexts,
    /// Sessions only, when every relation is remembered ([`send_lookup_sessions_sql`]).
    sessions: BucketTexts,
    /// Relation ids read or created lately.
    relation_ids: Arc<RelationIds>,
}

/// Coalescer behind `Sessions::single_send_lookup`: the lookups of concurrent sends share
/// one master statement, padded to a fixed size so the text stays prepared. Reads
/// `IMRecentSession`, and `IMRelationShip` unless the relation of every pair is remembered
/// ([`RelationIds`]); the relations it reads are remembered.
pub(crate) fn coalescer(
    pools: Pools,
    shape: Shape,
    relation_ids: Arc<RelationIds>,
    timings: &Timings,
) -> Coalescer<(u32, u32), SendLookup> {
    let shared = Arc::new(SendLookupShared {
        both: BucketTexts::new(send_lookup_sql),
        sessions: BucketTexts::new(send_lookup_sessions_sql),
        relation_ids,
    });
    Coalescer::spawn(
        "send_lookup",
        shape,
        timings,
        move |pairs: Vec<(u32, u32)>| {
            let pools = pools.clone();
            let shared = shared.clone();
            async move {
                let n = pairs.len();
                let outcome = pools
                    .run(Db::Master, false, async |c| {
                        send_lookups_on(c, &shared, &pairs).await
                    })
                    .await;
                fan_out(n, outcome)
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
        .filter_map(|&(from, to)| pair(from, to))
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
