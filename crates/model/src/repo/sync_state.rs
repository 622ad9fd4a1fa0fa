//! Process-wide sync bookkeeping kept in Redis instance `unread`:
//! `total_user_update` (last user-profile change, informational — Q-Y01) and
//! `last_update_group` (time of the last group-session sync pass).

use crate::error::Result;
use crate::redis::keys::{GROUP_SYNC_LEASE, LAST_UPDATE_GROUP, TOTAL_USER_UPDATE};
use crate::redis::scripts::{LEASE_RELEASE, LEASE_TAKE, RAISE_TO};
use crate::redis::Cache;

/// Writes `total_user_update` = `now` (unread instance).
pub(crate) async fn set_total_user_update(cache: &Cache, now: u32) -> Result<()> {
    cache.set(TOTAL_USER_UPDATE, &now.to_string()).await
}

/// Reads `last_update_group` (unread instance); `None` when missing or not a number.
pub(crate) async fn last_update_group(cache: &Cache) -> Result<Option<u32>> {
    let v = cache.get(LAST_UPDATE_GROUP).await?;
    Ok(v.and_then(|s| s.trim().parse().ok()))
}

/// Writes `last_update_group` = `t` (unread instance).
pub(crate) async fn set_last_update_group(cache: &Cache, t: u32) -> Result<()> {
    cache.set(LAST_UPDATE_GROUP, &t.to_string()).await
}

/// Raises `last_update_group` to `t` (never lowers it: several instances may write it).
pub(crate) async fn raise_last_update_group(cache: &Cache, t: u32) -> Result<()> {
    let keys = [LAST_UPDATE_GROUP.to_owned()];
    cache.eval(&RAISE_TO, &keys, &[t.to_string()]).await?;
    Ok(())
}

/// Takes or renews `dbproxy_group_sync_lease` for `holder` for `ttl_ms`; true when held.
pub(crate) async fn take_sync_lease(cache: &Cache, holder: &str, ttl_ms: u64) -> Result<bool> {
    let keys = [GROUP_SYNC_LEASE.to_owned()];
    let v = cache
        .eval(&LEASE_TAKE, &keys, &[holder.to_owned(), ttl_ms.to_string()])
        .await?;
    Ok(v.as_i64() == Some(1))
}

/// Gives `dbproxy_group_sync_lease` up when `holder` has it.
pub(crate) async fn release_sync_lease(cache: &Cache, holder: &str) -> Result<()> {
    let keys = [GROUP_SYNC_LEASE.to_owned()];
    cache
        .eval(&LEASE_RELEASE, &keys, &[holder.to_owned()])
        .await?;
    Ok(())
}
