//! MySQL infrastructure: the two pools, the bounded unit of work, and [`DbPool`], the one
//! argument through which every repository function reaches MySQL.
//!
//! Every unit of MySQL work runs through [`Pools::run`]: checkout is bounded by the pool wait
//! timeout, the whole unit by the statement timeout; a connection whose work timed out or
//! failed is **discarded** (never returned to the pool, so never reused mid-transaction).

pub(crate) mod lock;
pub(crate) mod migrate;
mod pool;
pub(crate) mod shard;
pub(crate) mod sql;
pub(crate) mod tables;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AnsiTransactionManager, AsyncMysqlConnection, TransactionManager};

use crate::breaker::Breaker;
use crate::config::{StoreConfig, Timeouts};
use crate::error::{Error, Result};
use pool::{MysqlPool, Object};

/// The connection type handed to units of work.
pub type DbConn = AsyncMysqlConnection;

/// A unit of DB work: an `async |conn| { ... }` closure returning `Result<R>` whose
/// future is `Send`. (Same trick diesel-async uses to name the future type.)
pub trait DbWork<'r, R>: FnOnce(&'r mut DbConn) -> <Self as DbWork<'r, R>>::Fut {
    /// The future returned by the closure.
    type Fut: Future<Output = Result<R>> + Send;
}

impl<'r, F, Fut, R> DbWork<'r, R> for F
where
    F: FnOnce(&'r mut DbConn) -> Fut,
    Fut: Future<Output = Result<R>> + Send,
{
    type Fut = Fut;
}

/// Which MySQL pool a read goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// `teamtalk_master`: writes, and reads that must see a write just made (Q-D06).
    Master,
    /// `teamtalk_slave`: plain reads.
    Slave,
}

/// Current unix time in seconds (0 if the clock is before 1970, saturating at u32::MAX).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// The two MySQL pools and the bounds of work on them. Cheap to clone; the coalescers hold
/// one instead of the whole store.
#[derive(Clone)]
pub(crate) struct Pools {
    master: MysqlPool,
    slave: MysqlPool,
    /// One per pool (the same one when master and slave share a pool).
    master_breaker: Arc<Breaker>,
    slave_breaker: Arc<Breaker>,
    /// Whether the slave settings differ from the master's (a replica of its own).
    separate_slave: bool,
    timeouts: Timeouts,
}

impl Pools {
    /// Build both pools (one shared pool when master and slave settings are equal) and
    /// check that each can open a connection now.
    pub(crate) async fn connect(cfg: &StoreConfig) -> Result<Pools> {
        let t = &cfg.timeouts;
        let master = pool::build(&cfg.master, t)?;
        // Every series exists from the start (at 0), so rates and alerts see it.
        for pool in ["master", "slave"] {
            for stage in ["checkout", "unit"] {
                metrics::counter!(crate::metrics::MYSQL_TIMEOUTS, "pool" => pool, "stage" => stage)
                    .increment(0);
            }
            metrics::counter!(crate::metrics::MYSQL_DISCARDED, "pool" => pool).increment(0);
        }
        metrics::counter!(crate::metrics::MYSQL_SLAVE_FALLBACKS).increment(0);
        let master_breaker = pool::breaker("mysql master", &master, t);
        let separate_slave = cfg.slave != cfg.master;
        let (slave, slave_breaker) = if !separate_slave {
            (master.clone(), master_breaker.clone())
        } else {
            let slave = pool::build(&cfg.slave, t)?;
            let breaker = pool::breaker("mysql slave", &slave, t);
            (slave, breaker)
        };
        drop(
            master
                .get()
                .await
                .map_err(|e| pool::pool_error("master", e))?,
        );
        // A replica of its own that cannot be reached does not stop the start: its breaker
        // opens and the master answers its reads until it does.
        match slave.get().await {
            Ok(conn) => drop(conn),
            Err(e) if separate_slave => slave_breaker.open(&pool::pool_error("slave", e)),
            Err(e) => return Err(pool::pool_error("slave", e)),
        }
        Ok(Pools {
            master,
            slave,
            master_breaker,
            slave_breaker,
            separate_slave,
            timeouts: t.clone(),
        })
    }

    /// `work` as one bounded unit of work on the pool `db`, inside a transaction when `tx`.
    ///
    /// Boxed (one allocation per unit): its future (pool checkout, timeout, diesel-async and
    /// mysql_async state) is several KB, and a request in flight should not carry it inline
    /// for every call it might make.
    pub(crate) async fn run<R, F>(&self, db: Db, tx: bool, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        let (pool, name, breaker) = match db {
            Db::Master => (&self.master, "master", &self.master_breaker),
            // A replica known to be down: its plain reads are answered by the master (which
            // has every write the replica has), until the breaker's probe finds it back.
            Db::Slave if self.separate_slave && self.slave_breaker.is_open() => {
                metrics::counter!(crate::metrics::MYSQL_SLAVE_FALLBACKS).increment(1);
                (&self.master, "master", &self.master_breaker)
            }
            Db::Slave => (&self.slave, "slave", &self.slave_breaker),
        };
        // Answered at once while the pool's backend is known to be down (crate::breaker).
        let admitted = breaker.admit()?;
        let started = std::time::Instant::now();
        let (out, outage) = Box::pin(run(pool, name, &self.timeouts, tx, work)).await;
        crate::stages::note("mysql", name, started.elapsed());
        breaker.record(admitted, if outage { out.as_ref().err() } else { None });
        out
    }

    /// Sets the pool gauges of both pools from their state now.
    pub(crate) fn record_gauges(&self) {
        for (name, pool) in [("master", &self.master), ("slave", &self.slave)] {
            let s = pool.status();
            metrics::gauge!(crate::metrics::MYSQL_POOL_CONNECTIONS, "pool" => name)
                .set(s.size as f64);
            metrics::gauge!(crate::metrics::MYSQL_POOL_IDLE, "pool" => name)
                .set(s.available as f64);
            metrics::gauge!(crate::metrics::MYSQL_POOL_WAITING, "pool" => name)
                .set(s.waiting as f64);
        }
    }

    /// A [`DbPool`] on the pool `db`.
    pub(crate) fn on(&self, db: Db) -> DbPool<'_> {
        DbPool::Pool(self, db)
    }
}

/// Where a repository function runs its statements, so that one signature serves both a
/// call of its own and a step of a larger unit of work (a transaction, a named lock, a
/// coalesced batch).
pub(crate) enum DbPool<'a> {
    /// Each [`DbPool::run`] is its own bounded unit of work on this pool ([`Pools::run`]).
    Pool(&'a Pools, Db),
    /// A connection the caller holds: work runs on it directly, within the caller's bounds.
    Conn(&'a mut DbConn),
}

impl DbPool<'_> {
    /// Run `work`: on a pool as one bounded unit of work, on a borrowed connection directly.
    pub(crate) async fn run<R, F>(&mut self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        match self {
            DbPool::Pool(pools, db) => pools.run(*db, false, work).await,
            DbPool::Conn(c) => work(c).await,
        }
    }

    /// Run `work` inside one transaction: committed when it returns `Ok`, rolled back on
    /// `Err`. On a pool the transaction is the whole unit of work (on timeout the connection
    /// is discarded and the server rolls back); on a borrowed connection it is opened there.
    pub(crate) async fn transaction<R, F>(&mut self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        match self {
            DbPool::Pool(pools, db) => pools.run(*db, true, work).await,
            DbPool::Conn(c) => in_transaction(c, work).await,
        }
    }
}

/// Attempts of a transaction that lost a deadlock / lock wait (1213 / 1205).
const TX_ATTEMPTS: u32 = 4;

impl DbPool<'_> {
    /// [`DbPool::transaction`], run again (a fresh transaction from a copy of `work`) when
    /// MariaDB rolled it back for a lock conflict; at most [`TX_ATTEMPTS`] times.
    pub(crate) async fn transaction_retried<F>(&mut self, what: &'static str, work: F) -> Result<()>
    where
        F: Clone
            + for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<()>
            + for<'r> DbWork<'r, ()>
            + Send,
    {
        let mut attempt = 1;
        loop {
            match self.transaction(work.clone()).await {
                Err(e) if e.is_lock_conflict() && attempt < TX_ATTEMPTS => {
                    tracing::debug!(what, attempt, error = %e, "lock conflict; transaction retried");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// BEGIN, `work`, then COMMIT on `Ok` or ROLLBACK on `Err`.
async fn in_transaction<R, F>(conn: &mut DbConn, work: F) -> Result<R>
where
    F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
    R: Send,
{
    AnsiTransactionManager::begin_transaction(conn)
        .await
        .map_err(|e| Error::mysql("BEGIN", e))?;
    match work(&mut *conn).await {
        Ok(v) => {
            AnsiTransactionManager::commit_transaction(conn)
                .await
                .map_err(Error::commit)?;
            Ok(v)
        }
        Err(e) => {
            // A failed rollback leaves the connection broken; a pooled one is discarded.
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            Err(e)
        }
    }
}

/// Should a connection whose work returned `e` be thrown away rather than pooled?
/// Anything but a plain "no row" result: a failed statement may have left a broken
/// socket or an aborted transaction behind, and reconnecting is cheap.
/// A lock conflict (deadlock / lock wait timeout) leaves a healthy connection: the server
/// rolled the transaction back (or the statement), and `run` rolls back what is left.
fn must_discard(e: &Error) -> bool {
    if e.is_lock_conflict() {
        return false;
    }
    !matches!(
        e.inner(),
        Error::NotFound(_)
            | Error::Invalid(_)
            | Error::Internal(_)
            // Another backend known to be down: nothing was sent, the connection is clean.
            | Error::Down { .. }
            | Error::Mysql {
                source: diesel::result::Error::NotFound,
                ..
            }
    )
}

/// `work` as one bounded unit of work, and whether its outcome says the server is not
/// answering: no connection within the pool wait, the unit timed out, or its connection
/// failed (not a refused statement, and not a failure of another backend called inside).
async fn run<R, F>(
    pool: &MysqlPool,
    name: &'static str,
    t: &Timeouts,
    tx: bool,
    work: F,
) -> (Result<R>, bool)
where
    F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
    R: Send,
{
    let checkout = std::time::Instant::now();
    let got = pool.get().await;
    metrics::histogram!(crate::metrics::MYSQL_CHECKOUT_SECONDS, "pool" => name)
        .record(checkout.elapsed().as_secs_f64());
    let mut obj: Object = match got {
        Ok(obj) => obj,
        Err(e) => {
            if matches!(e, deadpool::managed::PoolError::Timeout(_)) {
                metrics::counter!(crate::metrics::MYSQL_TIMEOUTS, "pool" => name, "stage" => "checkout")
                    .increment(1);
            }
            return (Err(pool::pool_error(name, e)), true);
        }
    };
    let cancel = obj.cancel_token();
    let limit = t.statement;
    let outcome = tokio::time::timeout(limit, async {
        let conn: &mut DbConn = &mut obj;
        if tx {
            in_transaction(conn, work).await
        } else {
            work(conn).await
        }
    })
    .await;
    match outcome {
        Ok(Ok(v)) => (Ok(v), false),
        Ok(Err(e)) => {
            if must_discard(&e) {
                metrics::counter!(crate::metrics::MYSQL_DISCARDED, "pool" => name).increment(1);
                drop(Object::take(obj));
            }
            let outage = e.is_connection_failure();
            (Err(e), outage)
        }
        Err(_elapsed) => {
            metrics::counter!(crate::metrics::MYSQL_TIMEOUTS, "pool" => name, "stage" => "unit")
                .increment(1);
            metrics::counter!(crate::metrics::MYSQL_DISCARDED, "pool" => name).increment(1);
            // Never return a connection that may be mid-statement or mid-transaction.
            drop(Object::take(obj));
            // Best effort: stop the statement on the server too.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), cancel.cancel_query()).await;
            });
            tracing::warn!(
                pool = name,
                ?limit,
                "mysql unit of work timed out; connection discarded"
            );
            (
                Err(Error::Timeout {
                    what: format!("mysql {name} unit of work"),
                    after: limit,
                }),
                true,
            )
        }
    }
}
