//! [`Store`]: the MySQL pools (master, slave), the Redis instances and the msfs client,
//! plus the single place where DB work runs with bounded waits.
//!
//! Every unit of MySQL work goes through [`Store::master`], [`Store::slave`] or
//! [`Store::master_tx`]: checkout is bounded by the pool wait timeout, the whole unit by the
//! statement timeout; a connection whose work timed out or failed is **discarded**
//! (never returned to the pool, so never reused mid-transaction).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Metrics, RecycleResult};
use deadpool::Runtime;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolableConnection};
use diesel_async::{AnsiTransactionManager, AsyncMysqlConnection, TransactionManager};

use crate::cache::Cache;
use crate::config::{MysqlConfig, StoreConfig, Timeouts};
use crate::error::{Error, Result};

/// The connection type handed to units of work.
pub type DbConn = AsyncMysqlConnection;

type MysqlPool = deadpool::managed::Pool<Manager>;
type Object = deadpool::managed::Object<Manager>;
type PoolError = deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>;

/// Run once on every new MySQL connection. The batched lookups filter on row-constructor
/// `IN` lists of up to 128 pairs over non-unique indexes; by default MariaDB estimates such a
/// list with B-tree descents for every pair and every candidate index before it runs the
/// statement: about a quarter of the CPU of a 32-pair send lookup (BENCHMARKS.md). Above
/// this many values it estimates from the index statistics instead. The plans of the hot
/// lookups stay the same (their lists bind the leading columns of the only usable index,
/// or of two indexes with the same leading columns).
const SESSION_SETUP: &str = "SET SESSION eq_range_index_dive_limit = 8";

/// Pool manager: diesel-async's, except that the recycle check (a `SELECT 1` round trip)
/// runs only for connections idle longer than `verify_idle`, or reported broken. A
/// recently used connection that the server closed meanwhile fails its unit of work,
/// which discards it (see `run`).
struct Manager {
    inner: AsyncDieselConnectionManager<DbConn>,
    verify_idle: Duration,
}

impl deadpool::managed::Manager for Manager {
    type Type = DbConn;
    type Error = diesel_async::pooled_connection::PoolError;

    async fn create(&self) -> Result<DbConn, Self::Error> {
        let mut conn = self.inner.create().await?;
        // An optimisation only: a server without the variable still serves every statement.
        if let Err(error) =
            diesel_async::RunQueryDsl::execute(diesel::sql_query(SESSION_SETUP), &mut conn).await
        {
            tracing::warn!(%error, statement = SESSION_SETUP, "MySQL session setup failed");
        }
        Ok(conn)
    }

    async fn recycle(&self, obj: &mut DbConn, metrics: &Metrics) -> RecycleResult<Self::Error> {
        if metrics.last_used() < self.verify_idle && !obj.is_broken() {
            return Ok(());
        }
        self.inner.recycle(obj, metrics).await
    }
}

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

/// The two MySQL pools and the bounds of work on them. Cheap to clone; the batch
/// dispatchers ([`crate::batch`]) hold one instead of the whole [`Store`].
#[derive(Clone)]
pub(crate) struct Pools {
    master: MysqlPool,
    slave: MysqlPool,
    timeouts: Timeouts,
}

/// The unit of work on a connection is boxed (one allocation per unit): its future (pool
/// checkout, timeout, diesel-async and mysql_async state) is several KB, and a request in
/// flight should not carry it inline for every call it might make.
impl Pools {
    pub(crate) async fn master<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        Box::pin(run(&self.master, "master", &self.timeouts, false, work)).await
    }

    pub(crate) async fn slave<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        Box::pin(run(&self.slave, "slave", &self.timeouts, false, work)).await
    }

    pub(crate) async fn master_tx<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        Box::pin(run(&self.master, "master", &self.timeouts, true, work)).await
    }
}

/// The request coalescers of the hot paths (see [`crate::batch`]).
pub(crate) struct Batches {
    pub login: crate::batch::Coalescer<String, Option<crate::user::User>>,
    pub send_lookup: crate::batch::Coalescer<(u32, u32), crate::session::SendLookup>,
    pub store_single: crate::batch::Coalescer<crate::message::OwnedSingle, crate::message::Sent>,
    pub groups_of_user: crate::batch::Coalescer<u32, Vec<u32>>,
    pub newest: crate::batch::Coalescer<crate::message::NewestReq, crate::message::NewestLists>,
    pub list_single:
        crate::batch::Coalescer<crate::message::PageReq, Vec<crate::message::SingleMessage>>,
}

struct Inner {
    pools: Pools,
    batches: Batches,
    relation_ids: Arc<crate::relation::RelationIds>,
    timings: crate::timing::Timings,
    unread: Cache,
    group_set: Cache,
    token: Cache,
    group_member: Cache,
    timeouts: Timeouts,
    msfs: crate::msfs::MsfsClient,
}

/// Handle to every backend. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("timeouts", &self.inner.timeouts)
            .finish_non_exhaustive()
    }
}

fn build_pool(cfg: &MysqlConfig, t: &Timeouts) -> Result<MysqlPool> {
    let mgr = Manager {
        inner: AsyncDieselConnectionManager::<DbConn>::new(cfg.url()),
        verify_idle: t.pool_verify_idle,
    };
    MysqlPool::builder(mgr)
        .max_size(cfg.max_connections.max(1))
        .wait_timeout(Some(t.pool_wait))
        .create_timeout(Some(t.connect))
        .recycle_timeout(Some(t.connect))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Invalid(format!("mysql pool {}: {e}", cfg.database)))
}

fn pool_error(pool: &'static str, e: PoolError) -> Error {
    Error::Pool {
        pool,
        reason: e.to_string(),
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
        e,
        Error::NotFound(_)
            | Error::Invalid(_)
            | Error::Mysql {
                source: diesel::result::Error::NotFound,
                ..
            }
    )
}

impl Store {
    /// Build the pools and connect. Fails (bounded by the connect timeouts) when MySQL or
    /// any Redis instance is unreachable — the original exits in that case too.
    /// Master and slave share one pool when their settings are equal; Redis instances
    /// with the same host/port/db share one connection pool.
    /// Starts the request coalescers ([`crate::config::Batching`]) as tasks on the current
    /// tokio runtime: use the `Store` while that runtime runs (calls fail with an error,
    /// never hang, once it is gone).
    pub async fn connect(cfg: &StoreConfig) -> Result<Store> {
        let t = &cfg.timeouts;
        // One batch gate per pool (one permit per connection), shared by the coalescers
        // using that pool (see `batch::Shape::gate`).
        let gate_of =
            |c: &MysqlConfig| Arc::new(tokio::sync::Semaphore::new(c.max_connections.max(1)));
        let (master, master_gate) = (build_pool(&cfg.master, t)?, gate_of(&cfg.master));
        let (slave, slave_gate) = if cfg.slave == cfg.master {
            (master.clone(), master_gate.clone())
        } else {
            (build_pool(&cfg.slave, t)?, gate_of(&cfg.slave))
        };
        // Verify both pools can open a connection now.
        drop(master.get().await.map_err(|e| pool_error("master", e))?);
        drop(slave.get().await.map_err(|e| pool_error("slave", e))?);

        let mut caches: Vec<(crate::config::RedisConfig, Cache)> = Vec::new();
        let mut get_cache = async |name: &'static str, rc: &crate::config::RedisConfig| {
            if let Some((_, c)) = caches.iter().find(|(k, _)| k.endpoint() == rc.endpoint()) {
                return Ok::<Cache, Error>(c.renamed(name));
            }
            let c = Cache::connect(name, rc, t).await?;
            caches.push((rc.clone(), c.clone()));
            Ok(c)
        };
        let unread = get_cache("unread", &cfg.unread).await?;
        let group_set = get_cache("group_set", &cfg.group_set).await?;
        let token = get_cache("token", &cfg.token).await?;
        let group_member = get_cache("group_member", &cfg.group_member).await?;

        let msfs =
            crate::msfs::MsfsClient::new(&cfg.msfs_url, t.connect, t.msfs_upload, t.msfs_download)?;
        let pools = Pools {
            master,
            slave,
            timeouts: t.clone(),
        };
        let slave_reads = cfg.batch.reads().gated(&slave_gate);
        let send_reads = cfg.batch.send_reads().gated(&master_gate);
        let writes = cfg.batch.writes().gated(&master_gate);
        let timings = crate::timing::Timings::default();
        let relation_ids = Arc::new(crate::relation::RelationIds::new(cfg.relation_ids_ttl));
        let batches = Batches {
            login: crate::user::login_coalescer(pools.clone(), slave_reads.clone(), &timings),
            send_lookup: crate::session::send_lookup_coalescer(
                pools.clone(),
                send_reads,
                relation_ids.clone(),
                &timings,
            ),
            store_single: crate::message::store_single_coalescer(
                pools.clone(),
                unread.clone(),
                writes,
                &timings,
            ),
            groups_of_user: crate::group::groups_of_user_coalescer(
                pools.clone(),
                slave_reads.clone(),
                &timings,
            ),
            newest: crate::message::newest_coalescer(
                pools.clone(),
                slave_reads.clone(),
                relation_ids.clone(),
                &timings,
            ),
            list_single: crate::message::list_single_coalescer(
                pools.clone(),
                slave_reads,
                relation_ids.clone(),
                &timings,
            ),
        };
        Ok(Store {
            inner: Arc::new(Inner {
                pools,
                batches,
                relation_ids,
                timings,
                unread,
                group_set,
                token,
                group_member,
                timeouts: t.clone(),
                msfs,
            }),
        })
    }

    /// Redis instance `unread` (message ids, unread counters, sync times).
    pub fn unread(&self) -> &Cache {
        &self.inner.unread
    }
    /// Redis instance `group_set` (group push shield).
    pub fn group_set(&self) -> &Cache {
        &self.inner.group_set
    }
    /// Redis instance `token` (device tokens).
    pub fn token(&self) -> &Cache {
        &self.inner.token
    }
    /// Redis instance `group_member` (member hashes).
    pub fn group_member(&self) -> &Cache {
        &self.inner.group_member
    }
    /// Configured timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.inner.timeouts
    }
    /// Time spent so far in each stage of the coalesced paths (queue waits, batches and
    /// their backend steps; see [`crate::StageTiming`]). Reads in-process counters only.
    pub fn timings(&self) -> Vec<crate::StageTiming> {
        self.inner.timings.snapshot()
    }

    pub(crate) fn batches(&self) -> &Batches {
        &self.inner.batches
    }
    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }
    pub(crate) fn relation_ids(&self) -> &crate::relation::RelationIds {
        &self.inner.relation_ids
    }
    /// The msfs client (voice payload store).
    pub fn msfs(&self) -> &crate::msfs::MsfsClient {
        &self.inner.msfs
    }

    /// Run `work` on a master connection (writes, and reads that must see writes — Q-D06).
    pub async fn master<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        self.inner.pools.master(work).await
    }

    /// Run `work` on a slave connection (plain reads).
    pub async fn slave<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        self.inner.pools.slave(work).await
    }

    /// Run `work` on the pool chosen by `db`.
    pub async fn on<R, F>(&self, db: Db, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        match db {
            Db::Master => self.inner.pools.master(work).await,
            Db::Slave => self.inner.pools.slave(work).await,
        }
    }

    /// Run `work` inside one transaction on a master connection: committed when it returns
    /// `Ok`, rolled back on `Err`; on timeout the connection is discarded (the server rolls
    /// the open transaction back when the socket closes).
    pub async fn master_tx<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        self.inner.pools.master_tx(work).await
    }
}

async fn run<R, F>(
    pool: &MysqlPool,
    name: &'static str,
    t: &Timeouts,
    tx: bool,
    work: F,
) -> Result<R>
where
    F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
    R: Send,
{
    let mut obj: Object = pool.get().await.map_err(|e| pool_error(name, e))?;
    let cancel = obj.cancel_token();
    let limit = t.statement;
    let outcome = tokio::time::timeout(limit, async {
        let conn: &mut DbConn = &mut obj;
        if tx {
            AnsiTransactionManager::begin_transaction(conn)
                .await
                .map_err(|e| Error::mysql("BEGIN", e))?;
            match work(&mut *conn).await {
                Ok(v) => {
                    AnsiTransactionManager::commit_transaction(conn)
                        .await
                        .map_err(|e| Error::mysql("COMMIT", e))?;
                    Ok(v)
                }
                Err(e) => {
                    // A failed rollback leaves the connection broken; it is discarded below.
                    let _ = AnsiTransactionManager::rollback_transaction(conn).await;
                    Err(e)
                }
            }
        } else {
            work(conn).await
        }
    })
    .await;
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            if must_discard(&e) {
                drop(Object::take(obj));
            }
            Err(e)
        }
        Err(_elapsed) => {
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
            Err(Error::Timeout {
                what: format!("mysql {name} unit of work"),
                after: limit,
            })
        }
    }
}
