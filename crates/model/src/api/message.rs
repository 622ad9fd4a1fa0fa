//! Single and group messages: id allocation, storage, lists and lookups.
//!
//! Tables `IMMessage_<relateId % 8>` and `IMGroupMessage_<groupId % 8>`, with
//! `IMRecentSession.updated` and `IMGroup.lastChated` bumped in the same transaction as the
//! insert; Redis (`unread` instance): counters `msg_id_<relateId>` and `group_msg_id_<G>`.

use crate::db::shard::shard_of;
use crate::db::Db;
use crate::error::Result;
use crate::repo::message as repo;
use crate::Store;

pub use crate::repo::message::{
    GroupMessage, NewGroupMessage, NewSingleMessage, Newest, OutgoingSingle, Sent, SingleMessage,
    BY_ID_LIMIT,
};

/// The sharded message tables and their id counters. Obtain with [`Store::messages`].
#[derive(Clone, Copy)]
pub struct Messages<'a> {
    store: &'a Store,
}

impl Store {
    /// Message repository (IMMessage_0..7, IMGroupMessage_0..7, id counters).
    pub fn messages(&self) -> Messages<'_> {
        Messages { store: self }
    }
}

impl Messages<'_> {
    /// Next msgId of the pair `relate_id`: INCRBY `msg_id_<R>` (unread); when the key is
    /// missing it is first raised to MAX(msgId) of `IMMessage_<R % 8>` for R (master).
    /// Never returns 0 or a wrapped value (errors instead, Q-M04).
    pub async fn allocate_single(&self, relate_id: u32) -> Result<u32> {
        repo::allocate_single(
            &mut self.store.db(Db::Master),
            self.store.unread(),
            relate_id,
        )
        .await
    }

    /// Next msgId of group `group_id` (`group_msg_id_<G>` in unread, seeded from
    /// `IMGroupMessage_<G % 8>` on master).
    pub async fn allocate_group(&self, group_id: u32) -> Result<u32> {
        repo::allocate_group(
            &mut self.store.db(Db::Master),
            self.store.unread(),
            group_id,
        )
        .await
    }

    /// Store a single message and bump `IMRecentSession.updated = session_time` of the given
    /// session ids (0s ignored) in ONE master transaction: either all is written or nothing.
    /// The sessions are bumped by one statement in id order; a transaction rolled back by a
    /// deadlock or lock wait timeout is run again (up to 4 attempts in all). Coalesced with
    /// concurrent calls. Writes `IMMessage_<relate_id % 8>` and `IMRecentSession`.
    pub async fn store_single(
        &self,
        m: &NewSingleMessage<'_>,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<()> {
        match self
            .store
            .hot()
            .store_single(m, sessions, session_time)
            .await?
        {
            Sent::Stored(_) => Ok(()),
            Sent::NotStored { error, .. } => Err(error),
        }
    }

    /// Send a single message: allocate its msgId (as [`Self::allocate_single`]), store it
    /// with the session bumps (as [`Self::store_single`]), then HINCRBY `unread_<to>`
    /// `<from>` 1. Concurrent sends share one EVAL for their ids, one transaction and one
    /// EVAL for their counters. `Err`: no id was allocated, nothing written. Otherwise
    /// [`Sent::Stored`] once the row is committed, or [`Sent::NotStored`] (id used, nothing
    /// stored). A failed counter increment is logged, not returned: the message is durable
    /// by then. Writes `msg_id_<R>`, `IMMessage_<R % 8>`, `IMRecentSession`, `unread_<to>`.
    pub async fn send_single(
        &self,
        m: &OutgoingSingle<'_>,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<Sent> {
        self.store
            .hot()
            .send_single(m, sessions, session_time)
            .await
    }

    /// Store a group message, set `IMGroup.lastChated = now` of the group and bump the given
    /// session ids to `session_time`, in ONE master transaction (retried on deadlock / lock
    /// wait timeout like [`Self::store_single`]).
    /// Writes `IMGroupMessage_<group_id % 8>`, `IMGroup`, `IMRecentSession`. When the
    /// COMMIT was cut off, the master is asked (for up to `Timeouts::outcome_check`) whether
    /// the message was stored, so `Ok` and `Err` are exact whenever it answers.
    pub async fn store_group(
        &self,
        m: &NewGroupMessage<'_>,
        now: u32,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<()> {
        let stored = repo::store_group(
            &mut self.store.db(Db::Master),
            m,
            now,
            sessions,
            session_time,
        )
        .await;
        match stored {
            // The COMMIT may have reached the server: ask the master rather than guess.
            Err(e) if repo::outcome_unknown(&e) => {
                let sql = repo::STORED_GROUP[shard_of(m.group_id)];
                let within = self.store.timeouts().outcome_check;
                let row = [m.group_id, m.msg_id, m.from_id, m.created];
                match repo::settle(self.store.pools(), sql, row, within).await {
                    Some(true) => {
                        tracing::info!(error = %e, "group message was committed after all");
                        Ok(())
                    }
                    Some(false) => Err(e),
                    None => {
                        tracing::error!(error = %e, ?within, "group message outcome unknown");
                        Err(e)
                    }
                }
            }
            other => other,
        }
    }

    /// Message list of a pair: status 0, `msgId <= begin` when begin ≠ 0, newest first
    /// (created desc, id desc — Q-D07), at most `count` rows (uncapped, Q-D09; 0 → empty).
    /// Reads `IMMessage_<relate_id % 8>` on slave with FORCE INDEX
    /// (idx_relateId_status_created).
    pub async fn list_single(
        &self,
        relate_id: u32,
        begin: u32,
        count: u32,
    ) -> Result<Vec<SingleMessage>> {
        repo::list_single(&mut self.store.db(Db::Slave), relate_id, begin, count).await
    }

    /// [`Self::list_single`] of the pair {a, b}: its active relation (`IMRelationShip`, unless
    /// read or created within `StoreConfig::relation_ids_ttl`) and the page
    /// (`IMMessage_<R % 8>`) in ONE slave unit of work, coalesced with concurrent calls. No
    /// relation → empty.
    pub async fn list_single_between(
        &self,
        a: u32,
        b: u32,
        begin: u32,
        count: u32,
    ) -> Result<Vec<SingleMessage>> {
        if count == 0 || a == 0 || b == 0 || a == b {
            return Ok(Vec::new());
        }
        self.store.hot().list_single(a, b, begin, count).await
    }

    /// Message list of a group for a member who joined at `join_time`: status 0,
    /// `created >= join_time`, `msgId <= begin` when begin ≠ 0, newest first, at most
    /// `count`. Reads `IMGroupMessage_<group_id % 8>` on slave. Membership is the caller's job.
    pub async fn list_group(
        &self,
        group_id: u32,
        join_time: u32,
        begin: u32,
        count: u32,
    ) -> Result<Vec<GroupMessage>> {
        repo::list_group(
            &mut self.store.db(Db::Slave),
            group_id,
            join_time,
            begin,
            count,
        )
        .await
    }

    /// Messages of a pair by msgId: status 0, `msgId IN ids`, newest first, at most
    /// [`BY_ID_LIMIT`]. Empty `ids` → empty. Reads `IMMessage_<relate_id % 8>` on slave.
    pub async fn by_ids_single(&self, relate_id: u32, ids: &[u32]) -> Result<Vec<SingleMessage>> {
        repo::by_ids_single(&mut self.store.db(Db::Slave), relate_id, ids).await
    }

    /// [`Self::by_ids_single`] of the pair {a, b}: its active relation (remembered within
    /// `StoreConfig::relation_ids_ttl`, else read from `IMRelationShip` on slave and
    /// remembered), then the messages. No relation → empty.
    pub async fn by_ids_single_between(
        &self,
        a: u32,
        b: u32,
        ids: &[u32],
    ) -> Result<Vec<SingleMessage>> {
        let Some(pair) = crate::repo::relation::pair(a, b) else {
            return Ok(Vec::new());
        };
        let found = self
            .store
            .hot()
            .relation_ids()
            .find_pairs(&mut self.store.db(Db::Slave), &[pair])
            .await?;
        match found.get(&pair) {
            Some(&relate_id) => self.by_ids_single(relate_id, ids).await,
            None => Ok(Vec::new()),
        }
    }

    /// Group messages by msgId for a member who joined at `join_time`: status 0,
    /// `created >= join_time`, newest first, at most [`BY_ID_LIMIT`]. Reads
    /// `IMGroupMessage_<G % 8>` on slave.
    pub async fn by_ids_group(
        &self,
        group_id: u32,
        join_time: u32,
        ids: &[u32],
    ) -> Result<Vec<GroupMessage>> {
        repo::by_ids_group(&mut self.store.db(Db::Slave), group_id, join_time, ids).await
    }

    /// Newest visible messages of many conversations of `user`: the active relations with
    /// all `peers` (`IMRelationShip`, except those read or created within
    /// `StoreConfig::relation_ids_ttl`), the newest status-0 row of each relation
    /// (`IMMessage_<R % 8>`) and of each of `groups` (`IMGroupMessage_<G % 8>`, no join-time
    /// filter, Q-M12). Coalesced with concurrent calls into one slave unit of work. The
    /// results follow the input order (one entry per peer / group, duplicates kept), `None`
    /// where there is no relation or no message.
    pub async fn newest_many(
        &self,
        user: u32,
        peers: &[u32],
        groups: &[u32],
    ) -> Result<(Vec<Option<Newest>>, Vec<Option<Newest>>)> {
        if peers.is_empty() && groups.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.store.hot().newest(user, peers, groups).await
    }

    /// Newest visible message of the pair `relate_id` (the voice placeholder is the
    /// caller's job). Reads `IMMessage_<relate_id % 8>` on slave.
    pub async fn newest_single(&self, relate_id: u32) -> Result<Option<Newest>> {
        repo::newest_single(&mut self.store.db(Db::Slave), relate_id).await
    }

    /// Newest visible message of group `group_id` (no join-time filter, Q-M12).
    /// Reads `IMGroupMessage_<group_id % 8>` on slave.
    pub async fn newest_group(&self, group_id: u32) -> Result<Option<Newest>> {
        repo::newest_group(&mut self.store.db(Db::Slave), group_id).await
    }
}
