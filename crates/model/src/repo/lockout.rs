//! Login failures shared by every db-proxy instance: `dbproxy_login_fail_<md5(name)>` lists
//! in the Redis `unread` instance (see [`crate::keys::login_failures_key`]).

use crate::error::Result;
use crate::redis::keys::login_failures_key;
use crate::redis::scripts::{LOGIN_FAILURE, LOGIN_FAILURES_SINCE};
use crate::redis::Cache;

/// Failures of `name` at or after `since` (unix s).
pub(crate) async fn failures_since(cache: &Cache, name: &str, since: u64) -> Result<usize> {
    let keys = [login_failures_key(name)];
    let v = cache
        .eval(&LOGIN_FAILURES_SINCE, &keys, &[since.to_string()])
        .await?;
    Ok(usize::try_from(v.as_i64().unwrap_or(0)).unwrap_or(0))
}

/// Records a failure of `name` at `now`, keeping the newest `keep`, expiring `window_secs`
/// after it.
pub(crate) async fn record_failure(
    cache: &Cache,
    name: &str,
    now: u64,
    keep: usize,
    window_secs: u64,
) -> Result<()> {
    let keys = [login_failures_key(name)];
    let args = [
        now.to_string(),
        keep.max(1).to_string(),
        window_secs.max(1).to_string(),
    ];
    cache.eval(&LOGIN_FAILURE, &keys, &args).await?;
    Ok(())
}

/// Forgets the failures of `name`.
pub(crate) async fn clear(cache: &Cache, name: &str) -> Result<()> {
    cache.del(&[&login_failures_key(name)]).await?;
    Ok(())
}
