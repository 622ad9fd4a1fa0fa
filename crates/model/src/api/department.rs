//! IMDepart: the department tree, read incrementally by clients.

use crate::db::Db;
use crate::error::Result;
use crate::repo::department as repo;
use crate::Store;

pub use crate::repo::department::Department;

/// IMDepart. Obtain with [`Store::departments`].
#[derive(Clone, Copy)]
pub struct Departments<'a> {
    store: &'a Store,
}

impl Store {
    /// IMDepart repository.
    pub fn departments(&self) -> Departments<'_> {
        Departments { store: self }
    }
}

impl Departments<'_> {
    /// Reads (slave) every `IMDepart` row with `updated > since` (any status), ascending id.
    pub async fn changed_since(&self, since: u32) -> Result<Vec<Department>> {
        repo::changed_since(&mut self.store.db(Db::Slave), since).await
    }

    /// Writes (master, one transaction) a new `IMDepart` row with `created = updated = now`;
    /// returns its id.
    pub async fn insert(&self, name: &str, parent_id: u32, priority: u32, now: u32) -> Result<u32> {
        repo::insert(
            &mut self.store.db(Db::Master),
            name,
            parent_id,
            priority,
            now,
        )
        .await
    }
}
