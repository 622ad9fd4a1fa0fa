//! The deadpool manager of MySQL connections and the pool builder.

use std::time::Duration;

use deadpool::managed::{Metrics, RecycleResult};
use deadpool::Runtime;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolableConnection};

use super::DbConn;
use crate::breaker::Breaker;
use crate::config::{MysqlConfig, Timeouts};
use crate::error::{Error, Result};

pub(crate) type MysqlPool = deadpool::managed::Pool<Manager>;
pub(crate) type Object = deadpool::managed::Object<Manager>;
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
pub(crate) struct Manager {
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

/// A pool for `cfg` bounded by the timeouts `t` (no connection is opened yet).
pub(crate) fn build(cfg: &MysqlConfig, t: &Timeouts) -> Result<MysqlPool> {
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

pub(crate) fn pool_error(pool: &'static str, e: PoolError) -> Error {
    Error::Pool {
        pool,
        reason: e.to_string(),
    }
}

/// The circuit breaker of `pool` (see `crate::breaker`): its probe checks out a connection
/// and runs `SELECT 1`; a connection that did not answer is discarded, not pooled.
pub(crate) fn breaker(
    name: &'static str,
    pool: &MysqlPool,
    t: &Timeouts,
) -> std::sync::Arc<Breaker> {
    let pool = pool.clone();
    // Long enough to open a new connection (the ones of the outage were discarded) and run
    // the statement.
    let probe_timeout = t.connect + t.connect;
    Breaker::new(
        name,
        std::sync::Arc::new(move || {
            let pool = pool.clone();
            Box::pin(async move {
                let Ok(obj) = pool.get().await else {
                    return false;
                };
                // Discarded unless it answered, also when the probe is cut off mid-statement.
                let mut held = Discard(Some(obj));
                let Some(conn) = held.0.as_mut() else {
                    return false;
                };
                let answered =
                    diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), &mut **conn)
                        .await
                        .is_ok();
                if answered {
                    // Back to the pool.
                    drop(held.0.take());
                }
                answered
            })
        }),
        probe_timeout,
    )
}

/// A checked-out connection that is thrown away when dropped, unless taken out first.
struct Discard(Option<Object>);

impl Drop for Discard {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            drop(Object::take(obj));
        }
    }
}
