//! Login failures shared by every instance, for the login lockout (docs/compatibility.md#login).

use crate::error::Result;
use crate::repo::lockout as repo;
use crate::Store;

/// Recent login failures and locked names (Redis instance `unread`, keys
/// `dbproxy_login_fail_<digest>` and `dbproxy_login_locked`, see [`crate::keys`]). Obtain
/// with [`Store::login_failures`].
#[derive(Clone, Copy)]
pub struct LoginFailures<'a> {
    store: &'a Store,
}

impl Store {
    /// Shared login failures and locks.
    pub fn login_failures(&self) -> LoginFailures<'_> {
        LoginFailures { store: self }
    }
}

impl LoginFailures<'_> {
    /// Writes a failure of `name` at `now` (the list keeps `max_failures + 1` times and
    /// expires `window_secs` after the last). When more than `max_failures` now lie within
    /// the window, writes the lock into `dbproxy_login_locked` and returns the time it
    /// lasts until.
    pub async fn record(
        &self,
        name: &str,
        now: u64,
        max_failures: usize,
        window_secs: u64,
    ) -> Result<Option<u64>> {
        repo::record_failure(self.store.unread(), name, now, max_failures, window_secs).await
    }

    /// Reads the names locked after `now`, as (`keys::login_digest(name)`, locked until).
    pub async fn locked_after(&self, now: u64) -> Result<Vec<(String, u64)>> {
        repo::locked_after(self.store.unread(), now).await
    }

    /// Deletes the failure list of `name` and its lock (after a successful login).
    pub async fn clear(&self, name: &str) -> Result<()> {
        repo::clear(self.store.unread(), name).await
    }
}
