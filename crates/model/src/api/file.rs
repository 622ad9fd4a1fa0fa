//! IMTransmitFile: offline file transfers waiting for their receiver.

use crate::db::Db;
use crate::error::Result;
use crate::repo::file as repo;
use crate::Store;

pub use crate::repo::file::{NewOfflineFile, OfflineFile};

/// IMTransmitFile. Obtain with [`Store::files`].
#[derive(Clone, Copy)]
pub struct Files<'a> {
    store: &'a Store,
}

impl Store {
    /// IMTransmitFile repository.
    pub fn files(&self) -> Files<'_> {
        Files { store: self }
    }
}

impl Files<'_> {
    /// Reads (slave) the `IMTransmitFile` rows for `to_id` with status 0, `created` asc
    /// (then id asc).
    pub async fn offline_for(&self, to_id: u32) -> Result<Vec<OfflineFile>> {
        repo::offline_for(&mut self.store.db(Db::Slave), to_id).await
    }

    /// Writes (master, one transaction) a new `IMTransmitFile` row (status 0, created =
    /// updated = now); no duplicate check. Returns the new row id.
    pub async fn add(&self, file: &NewOfflineFile, now: u32) -> Result<u32> {
        repo::add(&mut self.store.db(Db::Master), file, now).await
    }

    /// Deletes (master) the `IMTransmitFile` rows with this `fromId`, `toId` and `taskId`;
    /// returns the number of rows deleted.
    pub async fn delete(&self, from_id: u32, to_id: u32, task_id: &str) -> Result<usize> {
        repo::delete(&mut self.store.db(Db::Master), from_id, to_id, task_id).await
    }
}
