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

    /// Raises `last_update_group` to `t` atomically (unread instance; a lower stored value is
    /// replaced, a higher one kept), so instances that finish passes out of order never move
    /// the mark back.
    pub async fn raise_last_update_group(&self, t: u32) -> Result<()> {
        repo::raise_last_update_group(self.store.unread(), t).await
    }

    /// Takes, or renews when `holder` already has it, the group-sync lease
    /// `dbproxy_group_sync_lease` (unread instance) for `ttl_ms`. True when `holder` holds it
    /// afterwards: one instance of a deployment runs the sync at a time.
    pub async fn take_sync_lease(&self, holder: &str, ttl_ms: u64) -> Result<bool> {
        repo::take_sync_lease(self.store.unread(), holder, ttl_ms).await
    }

    /// Deletes the group-sync lease when `holder` has it (at shutdown, so another instance
    /// takes over at its next tick instead of after the TTL).
    pub async fn release_sync_lease(&self, holder: &str) -> Result<()> {
        repo::release_sync_lease(self.store.unread(), holder).await
    }
}
