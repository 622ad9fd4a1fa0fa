//! Process-wide sync bookkeeping kept in Redis instance `unread`:
//! `total_user_update` (last user-profile change, informational — Q-Y01) and
//! `last_update_group` (time of the last group-session sync pass).

use crate::error::Result;
use crate::Store;

const TOTAL_USER_UPDATE: &str = "total_user_update";
const LAST_UPDATE_GROUP: &str = "last_update_group";

/// Accessor for the sync keys. Obtain with [`Store::sync_state`].
#[derive(Clone, Copy)]
pub struct SyncState<'a> {
    store: &'a Store,
}

impl Store {
    /// Sync bookkeeping keys.
    pub fn sync_state(&self) -> SyncState<'_> {
        SyncState { store: self }
    }
}

impl SyncState<'_> {
    /// Writes `total_user_update` = `now` (unread instance).
    pub async fn set_total_user_update(&self, now: u32) -> Result<()> {
        self.store
            .unread()
            .set(TOTAL_USER_UPDATE, &now.to_string())
            .await
    }

    /// Reads `last_update_group` (unread instance); `None` when missing or not a number.
    pub async fn last_update_group(&self) -> Result<Option<u32>> {
        let v = self.store.unread().get(LAST_UPDATE_GROUP).await?;
        Ok(v.and_then(|s| s.trim().parse().ok()))
    }

    /// Writes `last_update_group` = `t` (unread instance).
    pub async fn set_last_update_group(&self, t: u32) -> Result<()> {
        self.store
            .unread()
            .set(LAST_UPDATE_GROUP, &t.to_string())
            .await
    }
}
