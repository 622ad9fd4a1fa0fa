//! [`Store`]: the backends (the MySQL pools, the four Redis instances, the msfs client and
//! the timeouts) plus the coalesced hot paths. The domain handles (`store.users()`, …)
//! reach every backend through it.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::RunQueryDsl;

use crate::batch::timing::{StageTiming, Timings};
use crate::config::{RedisConfig, StoreConfig, Timeouts};
use crate::db::{DbPool, Pools};
use crate::error::{Error, MysqlResultExt, Result};
use crate::hot::HotPaths;
use crate::msfs::MsfsClient;
use crate::redis::Cache;

pub use crate::db::{Db, DbConn, DbWork};

struct Inner {
    pools: Pools,
    hot: HotPaths,
    timings: Timings,
    unread: Cache,
    group_set: Cache,
    token: Cache,
    group_member: Cache,
    timeouts: Timeouts,
    msfs: MsfsClient,
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
        let pools = Pools::connect(cfg).await?;

        let mut caches: Vec<(RedisConfig, Cache)> = Vec::new();
        let mut get_cache = async |name: &'static str, rc: &RedisConfig| {
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

        let msfs = MsfsClient::new(&cfg.msfs_url, t.connect, t.msfs_upload, t.msfs_download)?;
        let timings = Timings::default();
        let hot = HotPaths::start(cfg, &pools, &unread, &timings);
        Ok(Store {
            inner: Arc::new(Inner {
                pools,
                hot,
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
    /// their backend steps; see [`StageTiming`]). Reads in-process counters only.
    pub fn timings(&self) -> Vec<StageTiming> {
        self.inner.timings.snapshot()
    }
    /// The msfs client (voice payload store).
    pub fn msfs(&self) -> &MsfsClient {
        &self.inner.msfs
    }

    /// Sets the MySQL pool gauges ([`crate::metrics::MYSQL_POOL_CONNECTIONS`], idle,
    /// waiting) from the pools' state now; a metrics exporter calls it before each scrape.
    pub fn record_pool_gauges(&self) {
        self.inner.pools.record_gauges();
    }

    /// Asks every backend for an answer: `SELECT 1` on the MySQL master and slave pools
    /// (bounded by the pool wait and unit timeouts), `PING` on each Redis instance (unread,
    /// group_set, token, group_member) within `within`.
    /// One entry per part, `(name, None)` when it answered, `(name, Some(why))` otherwise.
    /// A backend whose breaker is open fails at once.
    pub async fn readiness(&self, within: Duration) -> Vec<(&'static str, Option<String>)> {
        let part =
            |name: &'static str, check: Result<()>| (name, check.err().map(|e| e.to_string()));
        let mysql = async |db: Db| {
            let asked = self.inner.pools.run(db, false, async |c| {
                diesel::sql_query("SELECT 1")
                    .execute(c)
                    .await
                    .map(|_| ())
                    .ctx("SELECT 1")
            });
            // Bounded by the unit's own timeout, not cut off from outside: a cut-off unit
            // would hand its connection back to the pool mid-statement.
            asked.await
        };
        let redis = async |c: &Cache| match tokio::time::timeout(within, c.ping()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!("readiness PING {}", c.name()),
                after: within,
            }),
        };
        let i = &self.inner;
        let (master, slave, unread, group_set, token, group_member) = tokio::join!(
            mysql(Db::Master),
            mysql(Db::Slave),
            redis(&i.unread),
            redis(&i.group_set),
            redis(&i.token),
            redis(&i.group_member),
        );
        vec![
            part("mysql master", master),
            part("mysql slave", slave),
            part("redis unread", unread),
            part("redis group_set", group_set),
            part("redis token", token),
            part("redis group_member", group_member),
        ]
    }

    pub(crate) fn hot(&self) -> &HotPaths {
        &self.inner.hot
    }
    pub(crate) fn pools(&self) -> &Pools {
        &self.inner.pools
    }
    /// The pool `db` as a [`DbPool`] for repository functions.
    pub(crate) fn db(&self, db: Db) -> DbPool<'_> {
        self.inner.pools.on(db)
    }

    /// Run `work` on a master connection (writes, and reads that must see writes — Q-D06).
    pub async fn master<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        self.inner.pools.run(Db::Master, false, work).await
    }

    /// Run `work` on a slave connection (plain reads).
    pub async fn slave<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        self.inner.pools.run(Db::Slave, false, work).await
    }

    /// Run `work` on the pool chosen by `db`.
    pub async fn on<R, F>(&self, db: Db, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        self.inner.pools.run(db, false, work).await
    }

    /// Run `work` inside one transaction on a master connection: committed when it returns
    /// `Ok`, rolled back on `Err`; on timeout the connection is discarded (the server rolls
    /// the open transaction back when the socket closes).
    pub async fn master_tx<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'r> AsyncFnOnce(&'r mut DbConn) -> Result<R> + for<'r> DbWork<'r, R> + Send,
        R: Send,
    {
        self.inner.pools.run(Db::Master, true, work).await
    }
}
