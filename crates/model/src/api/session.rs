//! IMRecentSession: per-user conversation list.

use crate::db::Db;
use crate::error::Result;
use crate::repo::session as repo;
use crate::Store;

pub use crate::repo::session::{SendLookup, Session, GROUP, RECENT_LIMIT, SINGLE};

/// IMRecentSession. Obtain with [`Store::sessions`].
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    store: &'a Store,
}

impl Store {
    /// IMRecentSession repository.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { store: self }
    }
}

impl Sessions<'_> {
    /// Session id of (user, peer, kind) — visible ones only unless `any_status`; the newest
    /// row wins when there are duplicates. Reads `IMRecentSession` on `db` (use
    /// [`Db::Master`] right before a write, Q-D06).
    pub async fn find(
        &self,
        db: Db,
        user: u32,
        peer: u32,
        kind: u8,
        any_status: bool,
    ) -> Result<Option<u32>> {
        repo::find(&mut self.store.db(db), user, peer, kind, any_status).await
    }

    /// addSession: reactivate the existing (user, peer, kind) row (`status = 0, updated =
    /// now`) or insert (user, peer, kind, 0, now, now). Returns the session id.
    /// Concurrency-safe without UNIQUE keys (advisory lock `dbproxy_ses_<u>_<p>_<k>`,
    /// lookup on master). Reads/writes `IMRecentSession` on master.
    pub async fn add(&self, user: u32, peer: u32, kind: u8) -> Result<u32> {
        repo::add(&mut self.store.db(Db::Master), user, peer, kind).await
    }

    /// Visible session of (user, peer, kind), created/reactivated when missing:
    /// [`Self::find`] on master, else [`Self::add`].
    pub async fn get_or_add(&self, user: u32, peer: u32, kind: u8) -> Result<u32> {
        let mut master = self.store.db(Db::Master);
        match repo::find(&mut master, user, peer, kind, false).await? {
            Some(id) => Ok(id),
            None => repo::add(&mut master, user, peer, kind).await,
        }
    }

    /// Fast path of a single send: ONE master statement (Q-D06: reads right before the
    /// writes go to master), coalesced with concurrent sends, reads the visible type-1
    /// sessions of both sides (`IMRecentSession`, newest id per (userId, peerId)) and the
    /// active relation (`IMRelationShip`, newest id; not read when its id was read or created
    /// within `StoreConfig::relation_ids_ttl`). Missing pieces are `None`; the caller
    /// creates them with [`Self::add`] / [`crate::relation::Relations::get_or_create`]
    /// (the locked paths). `from == to` or a 0 id gives all `None`.
    pub async fn single_send_lookup(&self, from: u32, to: u32) -> Result<SendLookup> {
        if from == 0 || to == 0 || from == to {
            return Ok(SendLookup::default());
        }
        self.store.hot().send_lookup(from, to).await
    }

    /// updateSession: writes (master) `IMRecentSession.updated = t` on row `id`. Returns
    /// whether a row matched (id 0 matches nothing).
    pub async fn update(&self, id: u32, t: u32) -> Result<bool> {
        repo::update(&mut self.store.db(Db::Master), id, t).await
    }

    /// Writes (master, one statement) `IMRecentSession.updated = t` on every row of `ids`
    /// (0s ignored). Returns the number of rows matched.
    pub async fn bump(&self, ids: &[u32], t: u32) -> Result<usize> {
        repo::bump(&mut self.store.db(Db::Master), ids, t).await
    }

    /// removeSession: writes (master) `status = 1, updated = now` on `IMRecentSession` row
    /// `id`. Returns whether a row matched.
    pub async fn remove(&self, id: u32) -> Result<bool> {
        repo::remove(&mut self.store.db(Db::Master), id).await
    }

    /// Recent sessions of `user`: reads (slave) `IMRecentSession` rows with status 0 and
    /// `updated > after`, newest first, at most [`RECENT_LIMIT`]. Rows of any type are
    /// returned; callers skip types other than 1 and 2.
    pub async fn recent(&self, user: u32, after: u32) -> Result<Vec<Session>> {
        repo::recent(&mut self.store.db(Db::Slave), user, after).await
    }
}
