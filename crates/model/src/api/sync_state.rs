//! Process-wide sync bookkeeping kept in Redis instance `unread`.

use crate::error::Result;
use crate::repo::sync_state as repo;
use crate::Store;

/// The sync keys (`total_user_update`, `last_update_group`). Obtain with
/// [`Store::sync_state`].
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
    /// SET `total_user_update` = `now` (unread instance; informational, Q-Y01).
    pub async fn set_total_user_update(&self, now: u32) -> Result<()> {
        repo::set_total_user_update(self.store.unread(), now).await
    }

    /// GET `last_update_group` (unread instance); `None` when missing or not a number.
    pub async fn last_update_group(&self) -> Result<Option<u32>> {
        repo::last_update_group(self.store.unread()).await
    }

    /// SET `last_update_group` = `t` (unread instance).
    pub async fn set_last_update_group(&self, t: u32) -> Result<()> {
        repo::set_last_update_group(self.store.unread(), t).await
    }
}
