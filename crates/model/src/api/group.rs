//! Groups: IMGroup, IMGroupMember, the member hash `group_member_<G>` (Redis instance
//! `group_member`), the group push shield `group_set_<G>` (instance `group_set`) and the
//! group message counter seed `group_msg_id_<G>` (instance `unread`).
//!
//! Validity and membership are answered from the member hash like the original, with the
//! Q-R01/Q-R02 fix: a missing hash is rebuilt from the active IMGroupMember rows (join time =
//! `updated`) before answering. Every change of a group's membership (add, remove, rebuild)
//! runs under a MySQL advisory lock per group (`GET_LOCK`, name bound as a parameter), so
//! concurrent adds never create duplicate IMGroupMember rows (Q-D04) and a rebuild never
//! resurrects a member removed concurrently.

use crate::db::Db;
use crate::error::Result;
use crate::repo::group as repo;
use crate::Store;

pub use crate::repo::group::{Group, NewGroup, GROUP_TYPE_NORMAL, GROUP_TYPE_TMP};

/// Groups. Obtain with [`Store::groups`].
#[derive(Clone, Copy)]
pub struct Groups<'a> {
    store: &'a Store,
}

impl Store {
    /// Group repository (IMGroup, IMGroupMember, member hashes, push shield).
    pub fn groups(&self) -> Groups<'_> {
        Groups { store: self }
    }
}

impl Groups<'_> {
    /// Makes sure `group_member_<G>` exists when the group has active members: if the hash is
    /// missing, reads (master, under the group lock) the IMGroupMember rows with status 0 and
    /// writes (HSET) `<U>` → `updated` for each. Returns whether the hash exists afterwards
    /// (false for a group without active members, which stays invalid).
    pub async fn ensure_member_hash(&self, group_id: u32) -> Result<bool> {
        let members = self.store.group_member();
        repo::ensure_member_hash(&mut self.store.db(Db::Master), members, group_id).await
    }

    /// valid(G): whether `group_member_<G>` exists (EXISTS), after a rebuild from MySQL when
    /// it is missing ([`Groups::ensure_member_hash`]).
    pub async fn is_valid(&self, group_id: u32) -> Result<bool> {
        self.ensure_member_hash(group_id).await
    }

    /// member(U, G): whether field `<U>` of `group_member_<G>` is non-empty (HGET; a missing
    /// hash is rebuilt from MySQL, master, first).
    pub async fn is_member(&self, user_id: u32, group_id: u32) -> Result<bool> {
        let members = self.store.group_member();
        repo::is_member(&mut self.store.db(Db::Master), members, user_id, group_id).await
    }

    /// joinTime(U, G): field `<U>` of `group_member_<G>` as an integer; 0 when missing
    /// (a missing hash is rebuilt from MySQL, master, first).
    pub async fn join_time(&self, user_id: u32, group_id: u32) -> Result<u32> {
        let members = self.store.group_member();
        repo::join_time(&mut self.store.db(Db::Master), members, user_id, group_id).await
    }

    /// members(G): field names of `group_member_<G>` (HKEYS, rebuilt from MySQL when
    /// missing) as ids in **lexicographic order of the decimal strings** (Q-G08).
    pub async fn members(&self, group_id: u32) -> Result<Vec<u32>> {
        let members = self.store.group_member();
        repo::member_ids(&mut self.store.db(Db::Master), members, group_id).await
    }

    /// `(member, join time)` of `group_member_<G>` (HGETALL, rebuilt from MySQL when missing)
    /// in lexicographic order of the decimal member ids.
    pub async fn member_times(&self, group_id: u32) -> Result<Vec<(u32, u32)>> {
        let members = self.store.group_member();
        repo::member_times(&mut self.store.db(Db::Master), members, group_id).await
    }

    /// Reads (slave) the ids of the groups where `user_id` has an active `IMGroupMember`
    /// row, ordered `updated` desc, `id` desc (not de-duplicated, like the original).
    /// Coalesced with concurrent calls into one statement.
    pub async fn group_ids_of_user(&self, user_id: u32) -> Result<Vec<u32>> {
        self.store.hot().groups_of_user(user_id).await
    }

    /// Reads (slave) the active `(user, group)` memberships of many users in one query
    /// (`IMGroupMember` status 0), ordered by user, then `updated` desc, `id` desc.
    pub async fn group_ids_of_users(&self, user_ids: &[u32]) -> Result<Vec<(u32, u32)>> {
        repo::group_ids_of_users(&mut self.store.db(Db::Slave), user_ids).await
    }

    /// Reads (slave) `(id, version)` of the `IMGroup` rows with the given ids and type 1
    /// (normal groups), ordered `updated` desc; IMGroup.status is ignored (Q-G09).
    pub async fn normal_versions(&self, group_ids: &[u32]) -> Result<Vec<(u32, u32)>> {
        repo::normal_versions(&mut self.store.db(Db::Slave), group_ids).await
    }

    /// Reads (slave) the `IMGroup` rows with the given ids (any status), `updated` desc.
    pub async fn by_ids(&self, group_ids: &[u32]) -> Result<Vec<Group>> {
        repo::by_ids(&mut self.store.db(Db::Slave), group_ids).await
    }

    /// Reads (master: a group created a moment ago must be found) `(creator, type)` of
    /// `IMGroup` row `group_id`; `None` when missing.
    pub async fn creator_and_type(&self, group_id: u32) -> Result<Option<(u32, u32)>> {
        repo::creator_and_type(&mut self.store.db(Db::Master), group_id).await
    }

    /// Creates a group: writes (master, one transaction) an `IMGroup` row (status 0,
    /// version 1, lastChated 0, created = updated = now) and deletes any `IMGroupMember`
    /// rows left for the new id; SET `group_msg_id_<G>` = 0 (unread), DEL
    /// `group_member_<G>`, then [`Groups::insert_members`]. Returns the new group id.
    /// `members` is de-duplicated; IMGroup.userCnt ends up as the number of members (Q-G03).
    pub async fn create(&self, group: &NewGroup, members: &[u32], now: u32) -> Result<u32> {
        let (unread, hashes) = (self.store.unread(), self.store.group_member());
        repo::create(
            &mut self.store.db(Db::Master),
            unread,
            hashes,
            group,
            members,
            now,
        )
        .await
    }

    /// insertMembers(G, set), concurrency-safe: under the group's membership lock, reads
    /// (master) the existing `IMGroupMember` rows of the users (any status), reactivates the
    /// inactive ones (status 0, updated = now), inserts rows for the others, recounts
    /// `IMGroup.userCnt`, then HSETs `group_member_<G>` `<U>` = now for each user that joined
    /// (rebuilding the other active members first if the hash was missing). Users already
    /// active are left untouched (their join time kept), so of concurrent adds of one user
    /// exactly one changes anything; one active in MySQL but missing from the hash is written
    /// to it with its join time. Returns the users that joined (in MySQL or the hash), sorted
    /// (empty, writing nothing, for an empty set or `G = 0`).
    pub async fn insert_members(&self, group_id: u32, users: &[u32], now: u32) -> Result<Vec<u32>> {
        let members = self.store.group_member();
        repo::insert_members(
            &mut self.store.db(Db::Master),
            members,
            group_id,
            users,
            now,
        )
        .await
    }

    /// Removes members: under the group's membership lock, writes (master) status = 1 on the
    /// `IMGroupMember` rows of `G` for those users (`updated` untouched, Q-G07), recounts
    /// `IMGroup.userCnt`, and HDELs them from `group_member_<G>`. Returns the users that were
    /// members (an active row, or a field of the hash), sorted; an empty list does nothing.
    pub async fn remove_members(&self, group_id: u32, users: &[u32]) -> Result<Vec<u32>> {
        let members = self.store.group_member();
        repo::remove_members(&mut self.store.db(Db::Master), members, group_id, users).await
    }

    /// Writes (master) `IMGroup.version += 1` for `group_id`; true when the row exists.
    pub async fn bump_version(&self, group_id: u32) -> Result<bool> {
        repo::bump_version(&mut self.store.db(Db::Master), group_id).await
    }

    /// Writes HSET `group_set_<G>` `<U>_1` = `status` (decimal) — the group push shield.
    pub async fn set_push_shield(&self, group_id: u32, user_id: u32, status: u32) -> Result<()> {
        repo::set_push_shield(self.store.group_set(), group_id, user_id, status).await
    }

    /// Reads HGETALL `group_set_<G>` once and returns `(user, status)` for each requested
    /// user in request order (duplicates kept): the integer value of `<U>_1`, 0 if absent.
    pub async fn push_shields(&self, group_id: u32, users: &[u32]) -> Result<Vec<(u32, u32)>> {
        repo::push_shields(self.store.group_set(), group_id, users).await
    }

    /// Reads (master) `(id, lastChated)` of the `IMGroup` rows with status 0 and
    /// `lastChated >= since` (and lastChated ≠ 0), ascending id — the sync scan. On the
    /// master because the sync advances its mark to the time of the scan: a lagging replica
    /// would let a group chatted meanwhile fall behind the mark for good.
    pub async fn chatted_since(&self, since: u32) -> Result<Vec<(u32, u32)>> {
        repo::chatted_since(&mut self.store.db(Db::Master), since).await
    }

    /// Writes (master) `IMGroup.lastChated = t`, `updated` untouched (used by tests and
    /// tools; the message path sets it itself).
    pub async fn set_last_chated(&self, group_id: u32, t: u32) -> Result<bool> {
        repo::set_last_chated(&mut self.store.db(Db::Master), group_id, t).await
    }

    /// Reads (master) all `IMGroupMember` rows of `G` as `(userId, status)` ordered by id
    /// (diagnostics and tests: duplicates are visible here).
    pub async fn member_rows(&self, group_id: u32) -> Result<Vec<(u32, u32)>> {
        repo::member_rows(&mut self.store.db(Db::Master), group_id).await
    }
}
