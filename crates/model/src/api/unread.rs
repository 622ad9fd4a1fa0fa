//! Unread counters in the Redis `unread` instance (docs/compatibility.md#redis-key-layout, docs/compatibility.md#mark-read, docs/compatibility.md#unread-count-list, docs/compatibility.md#push-shield-and-device-tokens).
//!
//! Keys (exactly those of the original, see [`crate::keys`]): `unread_<U>` (field `<P>` →
//! unread single messages from P to U), `<G>_im_group_msg` (field `count` → messages stored
//! in G), `<U>_<G>_im_user_group` (field `count` → G's total when U last read or sent).
//! Group unread of U in G = group total − user copy (0 when negative, Q-C02). Copies of the
//! group total are done atomically in Lua (Q-C01).

use crate::error::Result;
use crate::repo::unread as repo;
use crate::Store;

/// Unread counters (Redis instance `unread`). Obtain with [`Store::counters`].
#[derive(Clone, Copy)]
pub struct Counters<'a> {
    store: &'a Store,
}

impl Store {
    /// Unread-counter repository (keys in the Redis `unread` instance, which itself is
    /// [`Store::unread`]).
    pub fn counters(&self) -> Counters<'_> {
        Counters { store: self }
    }
}

impl Counters<'_> {
    /// After a stored single message: HINCRBY `unread_<to>` `<from>` 1 → new count.
    pub async fn incr_single(&self, to: u32, from: u32) -> Result<i64> {
        repo::incr_single(self.store.unread(), to, from).await
    }

    /// Mark a single session read: HDEL `unread_<user>` `<peer>` → whether a field was removed.
    pub async fn clear_single(&self, user: u32, peer: u32) -> Result<bool> {
        repo::clear_single(self.store.unread(), user, peer).await
    }

    /// All single counters of `user` (HGETALL `unread_<user>`), in lexicographic order of the
    /// field strings, as (peer, count) with lenient integer parsing.
    pub async fn single_counts(&self, user: u32) -> Result<Vec<(u32, u32)>> {
        repo::single_counts(self.store.unread(), user).await
    }

    /// After a stored group message from `sender`: atomically HINCRBY `<G>_im_group_msg`
    /// `count` 1 and copy that hash into `<sender>_<G>_im_user_group`. Returns the new total.
    pub async fn group_incr(&self, group: u32, sender: u32) -> Result<u64> {
        repo::group_incr(self.store.unread(), group, sender).await
    }

    /// Mark group `group` read for `user` (Q-C01): atomically copy `<G>_im_group_msg` into
    /// `<U>_<G>_im_user_group`. Returns the copied total, `None` when the group hash does not
    /// exist (nothing changes, Q-C04).
    pub async fn group_mark_read(&self, user: u32, group: u32) -> Result<Option<u64>> {
        repo::group_mark_read(self.store.unread(), user, group).await
    }

    /// Group unread of `user` for each of `groups`, all HGETs of `<G>_im_group_msg` and
    /// `<U>_<G>_im_user_group` in one pipeline: `None` when the group total has no `count`;
    /// otherwise total − user copy (missing copy = 0), 0 when the copy is larger (Q-C02
    /// fixed). One entry per input group, in input order (duplicates kept).
    pub async fn group_unread(&self, user: u32, groups: &[u32]) -> Result<Vec<(u32, Option<u32>)>> {
        repo::group_unread(self.store.unread(), user, groups).await
    }

    /// Push badge of `user`: Σ of `unread_<user>` values + Σ of the group unread of `groups`
    /// (the caller passes the user's active groups, duplicates counted as given).
    pub async fn push_badge(&self, user: u32, groups: &[u32]) -> Result<u32> {
        repo::push_badge(self.store.unread(), user, groups).await
    }
}
