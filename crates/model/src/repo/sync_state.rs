//! Process-wide sync bookkeeping kept in Redis instance `unread`:
//! `total_user_update` (last user-profile change, informational — Q-Y01) and
//! `last_update_group` (time of the last group-session sync pass).

use crate::error::Result;
use crate::redis::keys::{LAST_UPDATE_GROUP, TOTAL_USER_UPDATE};
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
