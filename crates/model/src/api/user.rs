//! IMUser: accounts, profiles, signatures and the user-level push shield.

use crate::db::Db;
use crate::error::Result;
use crate::repo::user as repo;
use crate::Store;

pub use crate::repo::user::{md5_hex, password_hash, NewUser, User};

/// IMUser. Obtain with [`Store::users`].
#[derive(Clone, Copy)]
pub struct Users<'a> {
    store: &'a Store,
}

impl Store {
    /// IMUser repository.
    pub fn users(&self) -> Users<'_> {
        Users { store: self }
    }
}

impl Users<'_> {
    /// Reads (slave) the active account (`status = 0`) named `name`, compared by the column
    /// collation (Q-L06); with several rows the last one wins (Q-L05). `None` if no row.
    /// Coalesced with concurrent logins into one statement.
    pub async fn find_for_login(&self, name: &str) -> Result<Option<User>> {
        self.store.hot().login(name.to_owned()).await
    }

    /// Reads (slave) `IMUser` rows with the given ids, any status, ascending id; duplicates
    /// collapse and unknown ids vanish. Empty input → empty output without a query.
    pub async fn by_ids(&self, ids: &[u32]) -> Result<Vec<User>> {
        repo::by_ids(&mut self.store.db(Db::Slave), ids).await
    }

    /// Reads (slave) the `IMUser` rows changed since `since`, ascending id: when `since` is 0
    /// all users with `status != 3`, otherwise every user with `updated >= since` (any
    /// status, so resigned users are delivered as updates).
    pub async fn changed_since(&self, since: u32) -> Result<Vec<User>> {
        repo::changed_since(&mut self.store.db(Db::Slave), since).await
    }

    /// Reads (slave) MAX(`IMUser.updated`); 0 for an empty table.
    pub async fn max_updated(&self) -> Result<u32> {
        repo::max_updated(&mut self.store.db(Db::Slave)).await
    }

    /// Writes (master) `IMUser.sign_info` and `updated = now` of user `id`. True when the
    /// row exists (matched-rows semantics, Q-D05).
    pub async fn set_sign_info(&self, id: u32, sign_info: &str, now: u32) -> Result<bool> {
        repo::set_sign_info(&mut self.store.db(Db::Master), id, sign_info, now).await
    }

    /// Writes (master) `IMUser.push_shield_status` and `updated = now` of user `id`. True
    /// when the row exists (matched rows, Q-D05).
    pub async fn set_push_shield(&self, id: u32, status: u32, now: u32) -> Result<bool> {
        repo::set_push_shield(&mut self.store.db(Db::Master), id, status, now).await
    }

    /// Reads (slave) `IMUser.push_shield_status` of user `id`; `None` when there is no user.
    pub async fn push_shield(&self, id: u32) -> Result<Option<u32>> {
        repo::push_shield(&mut self.store.db(Db::Slave), id).await
    }

    /// Reads (slave) `(id, push_shield_status)` of `IMUser` for the given ids, one query.
    pub async fn push_shields(&self, ids: &[u32]) -> Result<Vec<(u32, u32)>> {
        repo::push_shields(&mut self.store.db(Db::Slave), ids).await
    }

    /// Writes (master, one transaction) a new `IMUser` row with `created = updated = now`;
    /// returns its id.
    pub async fn insert(&self, user: &NewUser, now: u32) -> Result<u32> {
        repo::insert(&mut self.store.db(Db::Master), user, now).await
    }

    /// Reads (slave) whether `IMUser` has any row (used by seeding tools).
    pub async fn is_empty(&self) -> Result<bool> {
        repo::is_empty(&mut self.store.db(Db::Slave)).await
    }
}
