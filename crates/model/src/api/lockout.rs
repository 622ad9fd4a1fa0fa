//! Login failures shared by every instance, for the login lockout (docs/compatibility.md#login).

use crate::error::Result;
use crate::repo::lockout as repo;
use crate::Store;

/// Recent login failures per name (Redis instance `unread`, key
/// `dbproxy_login_fail_<md5hex(name)>`). Obtain with [`Store::login_failures`].
#[derive(Clone, Copy)]
pub struct LoginFailures<'a> {
    store: &'a Store,
}

impl Store {
    /// Shared login-failure lists.
    pub fn login_failures(&self) -> LoginFailures<'_> {
        LoginFailures { store: self }
    }
}

impl LoginFailures<'_> {
    /// Reads how many failures of `name` happened at or after `since` (unix s).
    pub async fn since(&self, name: &str, since: u64) -> Result<usize> {
        repo::failures_since(self.store.unread(), name, since).await
    }

    /// Writes a failure of `name` at `now`: the list keeps the newest `keep` times and
    /// expires `window_secs` after the last failure.
    pub async fn record(&self, name: &str, now: u64, keep: usize, window_secs: u64) -> Result<()> {
        repo::record_failure(self.store.unread(), name, now, keep, window_secs).await
    }

    /// Deletes the failure list of `name` (after a successful login).
    pub async fn clear(&self, name: &str) -> Result<()> {
        repo::clear(self.store.unread(), name).await
    }
}
