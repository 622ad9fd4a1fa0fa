//! The coalesced message write: the single messages of concurrent sends get their ids from
//! one EVAL, are stored in one master transaction and counted as unread by one EVAL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use diesel::mysql::Mysql;
use diesel::sql_types::{Binary, Integer, TinyInt, Unsigned};
use diesel_async::RunQueryDsl;

use crate::batch::timing::Timings;
use crate::batch::{fan_out, Coalescer, Held, Shape};
use crate::db::shard::{shard_of, MESSAGE_TABLES};
use crate::db::sql::CacheExt;
use crate::db::{Db, DbConn, DbPool, Pools};
use crate::error::{Error, MysqlResultExt, Result};
use crate::redis::keys::{single_counter_key, single_unread_key};
use crate::redis::scripts::{HINCR_MANY, INCR_MANY_IF_EXIST};
use crate::redis::{Cache, ScriptValue};
use crate::repo::message::{
    allocate_single, msg_id_in_range, outcome_unknown, settle, OutgoingSingle, Sent, STORED_SINGLE,
};
use crate::repo::session;

/// A single message queued for the write coalescer (see [`coalescer`]).
pub(crate) struct OwnedSingle {
    pub(crate) relate_id: u32,
    pub(crate) from_id: u32,
    pub(crate) to_id: u32,
    /// `None`: a send; the batch allocates the id and counts the message as unread.
    pub(crate) msg_id: Option<u32>,
    pub(crate) content: Vec<u8>,
    pub(crate) kind: u8,
    pub(crate) created: u32,
    pub(crate) sessions: Vec<u32>,
    pub(crate) session_time: u32,
}

impl OwnedSingle {
    /// The job of `m`: `msg_id` given (a store) or `None` (a send, which allocates it).
    pub(crate) fn new(
        m: &OutgoingSingle<'_>,
        msg_id: Option<u32>,
        sessions: &[u32],
        session_time: u32,
    ) -> Self {
        OwnedSingle {
            relate_id: m.relate_id,
            from_id: m.from_id,
            to_id: m.to_id,
            msg_id,
            content: m.content.to_vec(),
            kind: m.kind,
            created: m.created,
            sessions: sessions.to_vec(),
            session_time,
        }
    }
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
        MESSAGE_TABLES[shard]
    );
    for _ in 1..n {
        sql.push_str(", (?, ?, ?, ?, ?, 0, ?, ?, ?)");
    }
    sql
}

/// Coalescer behind `Messages::store_single` and `Messages::send_single`: the messages
/// of concurrent calls get their missing ids from one EVAL, are stored in ONE master
/// transaction (multi-row INSERTs per shard, one session UPDATE per distinct session time,
/// one commit and log flush for all), and the sends among them are counted as unread by
/// one EVAL after the commit. The transaction is retried on a lock conflict; if it still
/// fails, each message is stored alone, so one bad row only fails its own request. Every
/// caller is answered only after its row is committed.
///
/// A batch whose outcome is unknown (its COMMIT cut off) is settled by asking the master for
/// up to `outcome_check` ([`settle`]); unread increments that Redis did not take are kept
/// and applied when it answers again ([`PendingUnread`]).
pub(crate) fn coalescer(
    pools: Pools,
    unread: Cache,
    shape: Shape,
    timings: &Timings,
    outcome_check: Duration,
) -> Coalescer<OwnedSingle, Sent> {
    let stages = Arc::new([
        timings.stage("store_single: ids"),
        timings.stage("store_single: transaction"),
        timings.stage("store_single: unread counters"),
    ]);
    let texts: Arc<Vec<Vec<String>>> = Arc::new(
        (0..8)
            .map(|shard| {
                (1..=INSERT_MAX_ROWS)
                    .map(|n| insert_single_sql(shard, n))
                    .collect()
            })
            .collect(),
    );
    let pending = Arc::new(PendingUnread::default());
    tokio::spawn(repair_unread(Arc::downgrade(&pending), unread.clone()));
    let run = move |jobs: Vec<OwnedSingle>, mut held: Held| {
        let pools = pools.clone();
        let unread = unread.clone();
        let pending = pending.clone();
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
                .time(
                    ready.len(),
                    store_batch(&pools, &texts, &ready, outcome_check, &mut held),
                )
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
                let increments = counted.iter().map(|j| ((j.to_id, j.from_id), 1));
                count_stage
                    .time(counted.len(), pending.apply(&unread, increments))
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
                .map(|r| {
                    r.unwrap_or_else(|| Err(Error::Internal("message left unanswered".into())))
                })
                .collect()
        }
    };
    Coalescer::spawn_held("store_single", shape, timings, run)
}

/// The ids of a batch: given ones kept, missing ones from one EVAL over their counters
/// (a pair sending twice gets two consecutive ids), a counter that does not exist seeded
/// alone as `allocate_single` does. One result per job, in order.
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
    let values = match cache.eval_replicated(&INCR_MANY_IF_EXIST, &keys, &[]).await {
        Ok(ScriptValue::List(values)) if values.len() == keys.len() => Ok(values),
        Ok(other) => Err(Error::redis_reply(
            format!("allocate {} ids", keys.len()),
            format!("unexpected script result: {other:?}"),
        )),
        Err(e) => Err(e),
    };
    let values = match values {
        Ok(values) => values,
        Err(e) => {
            for (&i, e) in wanted.iter().zip(e.fan_out(wanted.len())) {
                out[i] = Err(e);
            }
            return out;
        }
    };
    for ((&i, key), value) in wanted.iter().zip(keys).zip(values) {
        out[i] = match value.as_i64() {
            Some(0) => allocate_single(&mut pools.on(Db::Master), cache, jobs[i].relate_id).await,
            v => msg_id_in_range(&key, v),
        };
    }
    out
}

/// Store `jobs` (ids set) in one transaction, retried on a lock conflict; when a statement
/// of it failed, one by one. A transaction whose outcome is unknown is settled by asking the
/// master ([`settled`]), after the master gate (`held`) is released: the asking may last up
/// to `outcome_check`, and other sends must not queue behind it. One result per job.
async fn store_batch(
    pools: &Pools,
    texts: &[Vec<String>],
    jobs: &[OwnedSingle],
    outcome_check: Duration,
    held: &mut Held,
) -> Vec<Result<()>> {
    let n = jobs.len();
    if n == 0 {
        return Vec::new();
    }
    let together = pools
        .on(Db::Master)
        .transaction_retried("store_single", async |c| {
            store_singles_on(c, texts, jobs).await
        })
        .await;
    match together {
        Ok(()) => (0..n).map(|_| Ok(())).collect(),
        // Unknown outcome (the COMMIT may have reached the server): storing the messages
        // again could duplicate them; the master is asked instead.
        Err(e) if outcome_unknown(&e) => {
            held.release();
            let outcome = settled(pools, &jobs[0], e, outcome_check).await;
            match outcome {
                Ok(()) => (0..n).map(|_| Ok(())).collect(),
                Err(e) => fan_out(n, Err(e)),
            }
        }
        // A lone message, or no connection at all: storing again would only fail again.
        Err(e) if n == 1 || !rolled_back(&e) => fan_out(n, Err(e)),
        Err(e) => {
            tracing::warn!(error = %e, n, "message batch failed; storing one by one");
            let mut out = Vec::with_capacity(n);
            for job in jobs {
                let one = std::slice::from_ref(job);
                let alone = pools
                    .on(Db::Master)
                    .transaction_retried("store_single", async |c| {
                        store_singles_on(c, texts, one).await
                    })
                    .await;
                out.push(match alone {
                    Err(e) if outcome_unknown(&e) => {
                        held.release();
                        settled(pools, job, e, outcome_check).await
                    }
                    other => other,
                });
            }
            out
        }
    }
}

/// The outcome of a transaction that stored `job` (and maybe others with it) and failed
/// with `e` of unknown outcome: `Ok` when the master holds the row, `Err(e)` when it does
/// not or did not answer within `outcome_check`.
async fn settled(
    pools: &Pools,
    job: &OwnedSingle,
    e: Error,
    outcome_check: Duration,
) -> Result<()> {
    let Some(msg_id) = job.msg_id else {
        return Err(e);
    };
    let sql = STORED_SINGLE[shard_of(job.relate_id)];
    let row = [job.relate_id, msg_id, job.from_id, job.created];
    match settle(pools, sql, row, outcome_check).await {
        Some(true) => {
            tracing::info!(error = %e, "message transaction was committed after all");
            Ok(())
        }
        Some(false) => Err(e),
        None => {
            tracing::error!(
                error = %e,
                within = ?outcome_check,
                "message transaction outcome unknown: the master did not answer"
            );
            Err(e)
        }
    }
}

/// Most (to, from) pairs kept for a later increment while Redis does not answer; beyond
/// it, increments are dropped (and logged): the counters then stay behind their messages.
const PENDING_MAX: usize = 100_000;

/// How often kept increments are retried while no send comes to carry them.
const REPAIR_EVERY: Duration = Duration::from_millis(500);

/// Unread increments of committed messages that Redis certainly did not apply (its breaker
/// was open, or the counter key was not a hash): (to, from) -> count. They are applied with the next batch's increments or by
/// [`repair_unread`], so counters catch up with their messages once Redis answers. Kept
/// in this process only: a restart while Redis is down loses them
/// (docs/compatibility.md#unread-counters-while-redis-is-away).
#[derive(Default)]
struct PendingUnread {
    counts: Mutex<HashMap<(u32, u32), u64>>,
}

impl PendingUnread {
    /// HINCRBY `unread_<to>` `<from>` n for `increments` and everything kept, in one EVAL;
    /// what Redis does not take is kept again. A failure is logged, not returned: the
    /// messages are durable by then.
    async fn apply(&self, cache: &Cache, increments: impl IntoIterator<Item = ((u32, u32), u64)>) {
        let mut all = self.take();
        for (pair, n) in increments {
            *all.entry(pair).or_default() += n;
        }
        if all.is_empty() {
            return;
        }
        let pairs: Vec<((u32, u32), u64)> = all.into_iter().collect();
        let mut keys = Vec::with_capacity(pairs.len());
        let mut args = Vec::with_capacity(pairs.len() * 2);
        for &((to, from), n) in &pairs {
            keys.push(single_unread_key(to));
            args.push(from.to_string());
            args.push(n.to_string());
        }
        match cache.eval(&HINCR_MANY, &keys, &args).await {
            // Keys that are not hashes were skipped: kept, so they are applied once fixed.
            Ok(ScriptValue::List(skipped)) if !skipped.is_empty() => {
                let bad: HashMap<(u32, u32), u64> = skipped
                    .iter()
                    .filter_map(|v| v.as_i64())
                    .filter_map(|i| pairs.get(usize::try_from(i - 1).ok()?).copied())
                    .collect();
                let kept = self.keep(bad);
                tracing::warn!(
                    skipped = skipped.len(),
                    kept,
                    "unread counters that are not hashes in Redis; increments kept for a retry"
                );
            }
            Ok(_) => {}
            // Sent but not answered: Redis may still apply it (a stall) or has lost it with
            // its data (a crash); applying it again could count twice.
            Err(error) if error.is_redis_outage() => {
                tracing::error!(%error, n = pairs.len(), "unread counters: increments may be lost");
            }
            // Not applied (the breaker refused, or Redis refused the script).
            Err(error) => {
                let kept = self.keep(pairs.into_iter().collect());
                tracing::warn!(%error, kept, "unread counters not incremented yet; kept for a retry");
            }
        }
    }

    fn take(&self) -> HashMap<(u32, u32), u64> {
        self.counts
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.counts.lock().map(|m| m.is_empty()).unwrap_or(true)
    }

    /// Keeps `failed` for the next attempt, up to [`PENDING_MAX`] pairs; returns how many
    /// pairs are kept now.
    fn keep(&self, failed: HashMap<(u32, u32), u64>) -> usize {
        let Ok(mut kept) = self.counts.lock() else {
            return 0;
        };
        let mut dropped = 0u64;
        for (pair, n) in failed {
            if kept.len() < PENDING_MAX || kept.contains_key(&pair) {
                *kept.entry(pair).or_default() += n;
            } else {
                dropped += n;
            }
        }
        if dropped > 0 {
            tracing::error!(
                dropped,
                max = PENDING_MAX,
                "unread increments dropped: too many kept"
            );
        }
        kept.len()
    }
}

/// Retries kept increments every [`REPAIR_EVERY`] until the coalescer (and so `pending`)
/// is gone.
async fn repair_unread(pending: Weak<PendingUnread>, cache: Cache) {
    loop {
        tokio::time::sleep(REPAIR_EVERY).await;
        let Some(pending) = pending.upgrade() else {
            return;
        };
        if !pending.is_empty() {
            pending.apply(&cache, []).await;
            if pending.is_empty() {
                tracing::info!("kept unread increments applied");
            }
        }
    }
}

/// Whether a failed message transaction certainly stored nothing: a statement inside it
/// failed (the transaction was rolled back), as opposed to a failed or timed-out COMMIT or
/// a timeout of the whole unit, whose outcome is unknown.
fn rolled_back(e: &Error) -> bool {
    match e.inner() {
        Error::Mysql { .. } => true,
        Error::Commit { .. } => false,
        Error::Invalid(_) | Error::NotFound(_) | Error::Internal(_) => true,
        // No connection: nothing was sent, but storing one by one would only wait again.
        Error::Pool { .. }
        | Error::Timeout { .. }
        | Error::Down { .. }
        | Error::Redis { .. }
        | Error::Http { .. } => false,
        // `inner` never returns a shared error.
        Error::Shared(_) => false,
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
                    .ok_or_else(|| Error::Internal("message without a msgId".into()))?;
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
        session::bump(&mut DbPool::Conn(&mut *c), &ids, t).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_certain_rollbacks_are_stored_again_one_by_one() {
        let broken = || diesel::result::Error::BrokenTransactionManager;
        let db = |context: &str| Error::mysql(context, broken());
        assert!(rolled_back(&db("IMMessage insert")));
        assert!(rolled_back(&db("BEGIN")));
        assert!(
            !rolled_back(&Error::commit(broken())),
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
