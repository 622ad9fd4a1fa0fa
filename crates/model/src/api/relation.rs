//! IMRelationShip: the user pair → relateId mapping.

use crate::db::Db;
use crate::error::Result;
use crate::redis::keys::single_counter_key;
use crate::repo::relation as repo;
use crate::Store;

/// IMRelationShip (user pair → relateId). Obtain with [`Store::relations`].
#[derive(Clone, Copy)]
pub struct Relations<'a> {
    store: &'a Store,
}

impl Store {
    /// IMRelationShip repository.
    pub fn relations(&self) -> Relations<'_> {
        Relations { store: self }
    }
}

impl Relations<'_> {
    /// Active relation id (status 0) of the pair {a, b}; `None` when a or b is 0 or no
    /// row exists. Several rows → the newest (highest id) wins ("last row" of the original).
    /// Reads `IMRelationShip` on `db`.
    pub async fn find(&self, db: Db, a: u32, b: u32) -> Result<Option<u32>> {
        repo::find(&mut self.store.db(db), a, b).await
    }

    /// Relation id of {a, b}, creating or reactivating it when needed (Q-D04, Q-D05, Q-D06
    /// fixed). Concurrency-safe without UNIQUE keys: creation is serialised by the advisory
    /// lock `dbproxy_rel_<small>_<big>` and re-checked on master.
    ///
    /// Reads `IMRelationShip` (slave fast path, then master); writes on master either
    /// `status = 0, updated = now` on the first existing row (any status) or a new row
    /// (small, big, 0, now, now). After an insert: SET NX `msg_id_<id>` `0` (unread instance;
    /// a Redis failure there is logged, not returned). The id is remembered for the batched
    /// reads (`StoreConfig::relation_ids_ttl`); this call itself always asks the tables.
    pub async fn get_or_create(&self, a: u32, b: u32) -> Result<Option<u32>> {
        let Some((small, big)) = repo::pair(a, b) else {
            return Ok(None);
        };
        let remembered = self.store.hot().relation_ids();
        if let Some(id) = repo::find(&mut self.store.db(Db::Slave), a, b).await? {
            remembered.remember([((small, big), id)]);
            return Ok(Some(id));
        }
        let (id, inserted) = repo::create(&mut self.store.db(Db::Master), small, big).await?;
        if inserted {
            if let Err(e) = self
                .store
                .unread()
                .set_nx(&single_counter_key(id), "0")
                .await
            {
                tracing::warn!(relate_id = id, error = %e, "SET NX msg_id key failed");
            }
        }
        remembered.remember([((small, big), id)]);
        Ok(Some(id))
    }
}
