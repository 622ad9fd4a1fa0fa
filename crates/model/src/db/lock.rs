//! MySQL advisory locks (`GET_LOCK` / `RELEASE_LOCK`) to serialise check-then-insert
//! sequences per key without UNIQUE indexes (Q-D04). The lock lives on the connection:
//! take it, do the work and release it inside one unit of work on the same connection.
//! If the unit times out the connection is discarded and the server releases the lock.

use diesel::sql_types::{BigInt, Integer, Nullable, Text, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::sql::CacheExt;
use super::DbConn;
use crate::error::{Error, MysqlResultExt, Result};

#[derive(QueryableByName)]
struct LockResult {
    #[diesel(sql_type = Nullable<BigInt>)]
    v: Option<i64>,
}

/// Lock of the sessions of (user, peer, kind): `dbproxy_ses_<u>_<p>_<k>`.
pub(crate) fn session_lock(user: u32, peer: u32, kind: u8) -> String {
    format!("dbproxy_ses_{user}_{peer}_{kind}")
}

/// Lock of the relation of a pair: `dbproxy_rel_<small>_<big>`.
pub(crate) fn relation_lock(small: u32, big: u32) -> String {
    format!("dbproxy_rel_{small}_{big}")
}

/// Lock serialising the membership changes of group `g`: `dbproxy_grp_<g>`.
pub(crate) fn group_lock(g: u32) -> String {
    format!("dbproxy_grp_{g}")
}

/// Seconds to wait for a named lock.
pub(crate) const LOCK_WAIT_SECS: u32 = 3;

/// Run `work` while holding the advisory lock `name` (bound as a parameter; names longer
/// than 64 characters are rejected by the server). The lock is released afterwards,
/// whether `work` succeeded or not.
pub(crate) async fn with_lock<R>(
    conn: &mut DbConn,
    name: &str,
    work: impl AsyncFnOnce(&mut DbConn) -> Result<R>,
) -> Result<R> {
    let got: LockResult = diesel::sql_query("SELECT GET_LOCK(?, ?) AS v")
        .bind::<Text, _>(name)
        .bind::<Unsigned<Integer>, _>(LOCK_WAIT_SECS)
        .cached()
        .get_result(conn)
        .await
        .ctx(name)?;
    if got.v != Some(1) {
        return Err(Error::Timeout {
            what: format!("GET_LOCK {name}"),
            after: std::time::Duration::from_secs(u64::from(LOCK_WAIT_SECS)),
        });
    }
    let out = work(&mut *conn).await;
    let released = diesel::sql_query("SELECT RELEASE_LOCK(?) AS v")
        .bind::<Text, _>(name)
        .cached()
        .get_result::<LockResult>(conn)
        .await
        .ctx(name);
    match (out, released) {
        (Ok(v), Ok(_)) => Ok(v),
        // A failed release means the connection is suspect: report it so the unit
        // of work discards the connection (which releases the lock server-side).
        (Ok(_), Err(e)) => Err(e),
        (Err(e), _) => Err(e),
    }
}
