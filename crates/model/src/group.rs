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

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{Integer, Unsigned};
use diesel_async::{AnsiTransactionManager, RunQueryDsl, TransactionManager};

use crate::error::{MysqlResultExt, Result};
use crate::named_lock::with_lock;
use crate::sql::CacheExt;
use crate::tables::{im_group, im_group_member};
use crate::{DbConn, Store};

/// IMGroup.type of a normal (permanent) group.
pub const GROUP_TYPE_NORMAL: u32 = 1;
/// IMGroup.type of a temporary group.
pub const GROUP_TYPE_TMP: u32 = 2;

/// One IMGroup row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = im_group, check_for_backend(diesel::mysql::Mysql))]
pub struct Group {
    pub id: u32,
    pub name: String,
    pub avatar: String,
    pub creator: u32,
    /// 1 normal, 2 temporary.
    #[diesel(deserialize_as = u8)]
    pub group_type: u32,
    /// Number of active members (kept correct, Q-G03).
    pub user_cnt: u32,
    /// 0 active (db_proxy never changes it).
    #[diesel(deserialize_as = u8)]
    pub status: u32,
    pub version: u32,
    /// Time of the newest group message (0 = never).
    pub last_chated: u32,
    pub updated: u32,
    pub created: u32,
}

/// Fields of a group to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewGroup {
    pub name: String,
    pub avatar: String,
    /// Creator user id (0 when created by http_msg_server).
    pub creator: u32,
    /// 1 normal, 2 temporary.
    pub group_type: u32,
}

/// Repository of groups. Obtain with [`Store::groups`].
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

/// `group_member_<G>` (instance group_member).
pub fn member_key(group_id: u32) -> String {
    format!("group_member_{group_id}")
}

/// `group_set_<G>` (instance group_set).
pub fn shield_key(group_id: u32) -> String {
    format!("group_set_{group_id}")
}

/// `group_msg_id_<G>` (instance unread).
pub fn msg_id_key(group_id: u32) -> String {
    format!("group_msg_id_{group_id}")
}

/// Lenient integer parse of a Redis value like the original's `atoi` (garbage → 0, Q-D02),
/// wrapped into u32 like the original's int → uint32 conversion.
fn atoi(s: &str) -> u32 {
    crate::unread::atoi(s) as u32
}

/// Name of the advisory lock serialising membership changes of group `g`.
fn lock_name(g: u32) -> String {
    format!("dbproxy_grp_{g}")
}

/// Runs `body` between BEGIN and COMMIT (ROLLBACK on error) on `c`.
macro_rules! in_tx {
    ($c:expr, $body:expr) => {{
        AnsiTransactionManager::begin_transaction($c)
            .await
            .ctx("BEGIN")?;
        match $body {
            Ok(v) => {
                AnsiTransactionManager::commit_transaction($c)
                    .await
                    .ctx("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction($c).await;
                Err(e)
            }
        }
    }};
}

/// Active members of `g` from MySQL as (userId, updated); duplicates collapse to the
/// newest `updated`.
async fn active_members(c: &mut DbConn, g: u32) -> Result<BTreeMap<u32, u32>> {
    let rows: Vec<(u32, u32)> = im_group_member::table
        .filter(im_group_member::group_id.eq(g))
        .filter(im_group_member::status.eq(0u8))
        .select((im_group_member::user_id, im_group_member::updated))
        .load(c)
        .await
        .ctx("IMGroupMember active members")?;
    let mut out = BTreeMap::new();
    for (u, t) in rows {
        let e = out.entry(u).or_insert(t);
        *e = (*e).max(t);
    }
    Ok(out)
}

/// Sets IMGroup.userCnt of `g` to its number of distinct active members (Q-G03 fix).
async fn recount(c: &mut DbConn, g: u32) -> Result<()> {
    diesel::sql_query(
        "UPDATE IMGroup SET userCnt = (SELECT COUNT(DISTINCT userId) FROM IMGroupMember \
         WHERE groupId = ? AND status = 0) WHERE id = ?",
    )
    .bind::<Unsigned<Integer>, _>(g)
    .bind::<Unsigned<Integer>, _>(g)
    .cached()
    .execute(c)
    .await
    .ctx("IMGroup recount userCnt")?;
    Ok(())
}

impl Groups<'_> {
    /// Makes sure `group_member_<G>` exists when the group has active members: if the hash is
    /// missing, reads (master, under the group lock) the IMGroupMember rows with status 0 and
    /// writes (HSET) `<U>` → `updated` for each. Returns whether the hash exists afterwards
    /// (false for a group without active members, which stays invalid).
    pub async fn ensure_member_hash(&self, group_id: u32) -> Result<bool> {
        let cache = self.store.group_member();
        let key = member_key(group_id);
        if cache.exists(&key).await? {
            return Ok(true);
        }
        if group_id == 0 {
            return Ok(false);
        }
        let store = self.store.clone();
        self.store
            .master(async move |c| {
                // Unknown / emptied groups answer without taking the lock.
                if active_members(c, group_id).await?.is_empty() {
                    return Ok(false);
                }
                with_lock(c, &lock_name(group_id), async |c: &mut DbConn| {
                    rebuild_locked(&store, c, group_id).await
                })
                .await
            })
            .await
    }

    /// valid(G): whether `group_member_<G>` exists (EXISTS), after a rebuild from MySQL when
    /// it is missing ([`Groups::ensure_member_hash`]).
    pub async fn is_valid(&self, group_id: u32) -> Result<bool> {
        self.ensure_member_hash(group_id).await
    }

    /// Reads HGET `group_member_<G>` `<U>` (rebuilding a missing hash first).
    async fn member_field(&self, user_id: u32, group_id: u32) -> Result<Option<String>> {
        let cache = self.store.group_member();
        let key = member_key(group_id);
        let field = user_id.to_string();
        if let Some(v) = cache.hget(&key, &field).await? {
            return Ok(Some(v));
        }
        if cache.exists(&key).await? || !self.ensure_member_hash(group_id).await? {
            return Ok(None);
        }
        cache.hget(&key, &field).await
    }

    /// member(U, G): whether field `<U>` of `group_member_<G>` is non-empty (HGET; a missing
    /// hash is rebuilt from MySQL first).
    pub async fn is_member(&self, user_id: u32, group_id: u32) -> Result<bool> {
        Ok(self
            .member_field(user_id, group_id)
            .await?
            .is_some_and(|v| !v.is_empty()))
    }

    /// joinTime(U, G): field `<U>` of `group_member_<G>` as an integer; 0 when missing.
    pub async fn join_time(&self, user_id: u32, group_id: u32) -> Result<u32> {
        Ok(self
            .member_field(user_id, group_id)
            .await?
            .map(|v| atoi(&v))
            .unwrap_or(0))
    }

    /// members(G): field names of `group_member_<G>` (HGETALL, rebuilt from MySQL when
    /// missing) as ids in **lexicographic order of the decimal strings** (Q-G08).
    pub async fn members(&self, group_id: u32) -> Result<Vec<u32>> {
        Ok(self
            .member_times(group_id)
            .await?
            .into_iter()
            .map(|(u, _)| u)
            .collect())
    }

    /// `(member, join time)` of `group_member_<G>` (HGETALL, rebuilt from MySQL when missing)
    /// in lexicographic order of the decimal member ids.
    pub async fn member_times(&self, group_id: u32) -> Result<Vec<(u32, u32)>> {
        let cache = self.store.group_member();
        let key = member_key(group_id);
        let mut map = cache.hgetall(&key).await?;
        if map.is_empty() && self.ensure_member_hash(group_id).await? {
            map = cache.hgetall(&key).await?;
        }
        Ok(map.iter().map(|(k, v)| (atoi(k), atoi(v))).collect())
    }

    /// Reads (slave) the ids of the groups where `user_id` has an active IMGroupMember row,
    /// ordered `updated` desc, `id` desc (not de-duplicated, like the original).
    pub async fn group_ids_of_user(&self, user_id: u32) -> Result<Vec<u32>> {
        self.store.batches().groups_of_user.call(user_id).await
    }

    /// Reads (slave) the active `(user, group)` memberships of many users in one query
    /// (IMGroupMember status 0), ordered by user, then `updated` desc, `id` desc.
    pub async fn group_ids_of_users(&self, user_ids: &[u32]) -> Result<Vec<(u32, u32)>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = user_ids.to_vec();
        self.store
            .slave(async move |c| {
                im_group_member::table
                    .filter(im_group_member::user_id.eq_any(ids))
                    .filter(im_group_member::status.eq(0u8))
                    .order((
                        im_group_member::user_id.asc(),
                        im_group_member::updated.desc(),
                        im_group_member::id.desc(),
                    ))
                    .select((im_group_member::user_id, im_group_member::group_id))
                    .load(c)
                    .await
                    .ctx("IMGroupMember groups of users")
            })
            .await
    }

    /// Reads (slave) `(id, version)` of the IMGroup rows with the given ids and type 1
    /// (normal groups), ordered `updated` desc; IMGroup.status is ignored (Q-G09).
    pub async fn normal_versions(&self, group_ids: &[u32]) -> Result<Vec<(u32, u32)>> {
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = group_ids.to_vec();
        self.store
            .slave(async move |c| {
                im_group::table
                    .filter(im_group::id.eq_any(ids))
                    .filter(im_group::group_type.eq(GROUP_TYPE_NORMAL as u8))
                    .order((im_group::updated.desc(), im_group::id.desc()))
                    .select((im_group::id, im_group::version))
                    .load(c)
                    .await
                    .ctx("IMGroup normal versions")
            })
            .await
    }

    /// Reads (slave) the IMGroup rows with the given ids (any status), ordered `updated` desc.
    pub async fn by_ids(&self, group_ids: &[u32]) -> Result<Vec<Group>> {
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = group_ids.to_vec();
        self.store
            .slave(async move |c| {
                im_group::table
                    .filter(im_group::id.eq_any(ids))
                    .order((im_group::updated.desc(), im_group::id.desc()))
                    .select(Group::as_select())
                    .load(c)
                    .await
                    .ctx("IMGroup by ids")
            })
            .await
    }

    /// Reads (slave) `(creator, type)` of group `group_id`; `None` when there is no row.
    pub async fn creator_and_type(&self, group_id: u32) -> Result<Option<(u32, u32)>> {
        let row: Option<(u32, u8)> = self
            .store
            .slave(async move |c| {
                im_group::table
                    .find(group_id)
                    .select((im_group::creator, im_group::group_type))
                    .first(c)
                    .await
                    .optional()
                    .ctx("IMGroup creator/type")
            })
            .await?;
        Ok(row.map(|(c, t)| (c, u32::from(t))))
    }

    /// Creates a group: writes (master) an IMGroup row (status 0, version 1, lastChated 0,
    /// created = updated = now), SET `group_msg_id_<G>` = 0 (unread), deletes any
    /// IMGroupMember rows and DEL `group_member_<G>` left for the new id, then
    /// [`Groups::insert_members`]. Returns the new group id. `members` is de-duplicated;
    /// IMGroup.userCnt ends up as the number of members (Q-G03 fix).
    pub async fn create(&self, group: &NewGroup, members: &[u32], now: u32) -> Result<u32> {
        let g = group.clone();
        let mut set: Vec<u32> = members.to_vec();
        set.sort_unstable();
        set.dedup();
        let count = u32::try_from(set.len()).unwrap_or(u32::MAX);
        let group_id = self
            .store
            .master_tx(async move |c| {
                diesel::insert_into(im_group::table)
                    .values((
                        im_group::name.eq(g.name),
                        im_group::avatar.eq(g.avatar),
                        im_group::creator.eq(g.creator),
                        im_group::group_type.eq(u8::try_from(g.group_type).unwrap_or(u8::MAX)),
                        im_group::user_cnt.eq(count),
                        im_group::status.eq(0u8),
                        im_group::version.eq(1u32),
                        im_group::last_chated.eq(0u32),
                        im_group::updated.eq(now),
                        im_group::created.eq(now),
                    ))
                    .execute(c)
                    .await
                    .ctx("IMGroup insert")?;
                let id = crate::sql::last_insert_id(c).await?;
                diesel::delete(im_group_member::table.filter(im_group_member::group_id.eq(id)))
                    .execute(c)
                    .await
                    .ctx("IMGroupMember cleanup of new group")?;
                Ok(id)
            })
            .await?;
        self.store.unread().set(&msg_id_key(group_id), "0").await?;
        self.store
            .group_member()
            .del(&[member_key(group_id).as_str()])
            .await?;
        self.insert_members(group_id, &set, now).await?;
        Ok(group_id)
    }

    /// insertMembers(G, set) of behaviour.md §10.7, concurrency-safe: under the group's
    /// membership lock, reads (master) the existing IMGroupMember rows of the users (any
    /// status), reactivates them (status 0, updated = now), inserts rows for the others,
    /// recounts IMGroup.userCnt, then HSETs `group_member_<G>` `<U>` = now for every user of
    /// the set (rebuilding the other active members first if the hash was missing).
    /// Returns false (writing nothing) for an empty set or `G = 0`.
    pub async fn insert_members(&self, group_id: u32, users: &[u32], now: u32) -> Result<bool> {
        let mut set: Vec<u32> = users.to_vec();
        set.sort_unstable();
        set.dedup();
        if set.is_empty() || group_id == 0 {
            return Ok(false);
        }
        let store = self.store.clone();
        self.store
            .master(async move |c| {
                with_lock(c, &lock_name(group_id), async |c: &mut DbConn| {
                    insert_locked(&store, c, group_id, &set, now).await
                })
                .await
                .map(|()| true)
            })
            .await
    }

    /// Removes members: under the group's membership lock, writes (master) status = 1 on the
    /// IMGroupMember rows of `G` for those users (`updated` untouched, Q-G07), recounts
    /// IMGroup.userCnt, and HDELs them from `group_member_<G>`. An empty list does nothing.
    pub async fn remove_members(&self, group_id: u32, users: &[u32]) -> Result<()> {
        let mut set: Vec<u32> = users.to_vec();
        set.sort_unstable();
        set.dedup();
        if set.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        self.store
            .master(async move |c| {
                with_lock(c, &lock_name(group_id), async |c: &mut DbConn| {
                    remove_locked(&store, c, group_id, &set).await
                })
                .await
            })
            .await
    }

    /// Writes (master) IMGroup.version += 1 for `group_id`; true when the row exists.
    pub async fn bump_version(&self, group_id: u32) -> Result<bool> {
        let n = self
            .store
            .master(async move |c| {
                diesel::update(im_group::table.find(group_id))
                    .set(im_group::version.eq(im_group::version + 1u32))
                    .execute(c)
                    .await
                    .ctx("IMGroup version += 1")
            })
            .await?;
        Ok(n > 0)
    }

    /// Writes HSET `group_set_<G>` `<U>_1` = `status` (decimal) — the group push shield.
    pub async fn set_push_shield(&self, group_id: u32, user_id: u32, status: u32) -> Result<()> {
        self.store
            .group_set()
            .hset(
                &shield_key(group_id),
                &format!("{user_id}_1"),
                &status.to_string(),
            )
            .await
            .map(|_| ())
    }

    /// Reads HGETALL `group_set_<G>` once and returns `(user, status)` for each requested
    /// user in request order (duplicates kept): the integer value of `<U>_1`, 0 if absent.
    pub async fn push_shields(&self, group_id: u32, users: &[u32]) -> Result<Vec<(u32, u32)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let map = self
            .store
            .group_set()
            .hgetall(&shield_key(group_id))
            .await?;
        Ok(users
            .iter()
            .map(|u| {
                let v = map.get(&format!("{u}_1")).map(|s| atoi(s)).unwrap_or(0);
                (*u, v)
            })
            .collect())
    }

    /// Reads (slave) `(id, lastChated)` of the IMGroup rows with status 0 and
    /// `lastChated >= since` (and lastChated ≠ 0), ascending id — the sync scan.
    pub async fn chatted_since(&self, since: u32) -> Result<Vec<(u32, u32)>> {
        self.store
            .slave(async move |c| {
                im_group::table
                    .filter(im_group::status.eq(0u8))
                    .filter(im_group::last_chated.ge(since))
                    .filter(im_group::last_chated.ne(0u32))
                    .order(im_group::id.asc())
                    .select((im_group::id, im_group::last_chated))
                    .load(c)
                    .await
                    .ctx("IMGroup chatted since")
            })
            .await
    }

    /// Writes (master) IMGroup.lastChated = `t` and `updated` untouched (used by tests and
    /// tools; the message path sets it itself).
    pub async fn set_last_chated(&self, group_id: u32, t: u32) -> Result<bool> {
        let n = self
            .store
            .master(async move |c| {
                diesel::update(im_group::table.find(group_id))
                    .set(im_group::last_chated.eq(t))
                    .execute(c)
                    .await
                    .ctx("IMGroup set lastChated")
            })
            .await?;
        Ok(n > 0)
    }

    /// Reads (master) all IMGroupMember rows of `G` as `(userId, status)` ordered by id
    /// (diagnostics and tests: duplicates are visible here).
    pub async fn member_rows(&self, group_id: u32) -> Result<Vec<(u32, u32)>> {
        let rows: Vec<(u32, u8)> = self
            .store
            .master(async move |c| {
                im_group_member::table
                    .filter(im_group_member::group_id.eq(group_id))
                    .order(im_group_member::id.asc())
                    .select((im_group_member::user_id, im_group_member::status))
                    .load(c)
                    .await
                    .ctx("IMGroupMember rows of group")
            })
            .await?;
        Ok(rows.into_iter().map(|(u, s)| (u, u32::from(s))).collect())
    }
}

/// Rebuild of a missing member hash; the caller holds the group lock.
async fn rebuild_locked(store: &Store, c: &mut DbConn, g: u32) -> Result<bool> {
    let cache = store.group_member();
    let key = member_key(g);
    if cache.exists(&key).await? {
        return Ok(true);
    }
    let active = active_members(c, g).await?;
    if active.is_empty() {
        return Ok(false);
    }
    let pairs: Vec<(String, String)> = active
        .iter()
        .map(|(u, t)| (u.to_string(), t.to_string()))
        .collect();
    cache.hset_many(&key, &pairs).await?;
    tracing::info!(
        group_id = g,
        members = pairs.len(),
        "rebuilt missing member hash from IMGroupMember"
    );
    Ok(true)
}

async fn insert_locked(store: &Store, c: &mut DbConn, g: u32, set: &[u32], now: u32) -> Result<()> {
    let ids = set.to_vec();
    let had_missing_hash = !store.group_member().exists(&member_key(g)).await?;
    in_tx!(
        c,
        async {
            let had: Vec<u32> = im_group_member::table
                .filter(im_group_member::group_id.eq(g))
                .filter(im_group_member::user_id.eq_any(ids.clone()))
                .select(im_group_member::user_id)
                .load(c)
                .await
                .ctx("IMGroupMember existing rows")?;
            if !had.is_empty() {
                diesel::update(
                    im_group_member::table
                        .filter(im_group_member::group_id.eq(g))
                        .filter(im_group_member::user_id.eq_any(had.clone())),
                )
                .set((
                    im_group_member::status.eq(0u8),
                    im_group_member::updated.eq(now),
                ))
                .execute(c)
                .await
                .ctx("IMGroupMember reactivate")?;
            }
            let fresh: Vec<_> = ids
                .iter()
                .filter(|u| !had.contains(u))
                .map(|u| {
                    (
                        im_group_member::group_id.eq(g),
                        im_group_member::user_id.eq(*u),
                        im_group_member::status.eq(0u8),
                        im_group_member::created.eq(now),
                        im_group_member::updated.eq(now),
                    )
                })
                .collect();
            if !fresh.is_empty() {
                diesel::insert_into(im_group_member::table)
                    .values(fresh)
                    .execute(c)
                    .await
                    .ctx("IMGroupMember insert")?;
            }
            recount(c, g).await
        }
        .await
    )?;
    let cache = store.group_member();
    let key = member_key(g);
    let mut pairs: HashMap<u32, u32> = HashMap::new();
    if had_missing_hash {
        // Q-R01/Q-R02: bring back the other active members too (their join time = updated).
        pairs.extend(active_members(c, g).await?);
    }
    for u in set {
        pairs.insert(*u, now);
    }
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(u, t)| (u.to_string(), t.to_string()))
        .collect();
    cache.hset_many(&key, &pairs).await
}

async fn remove_locked(store: &Store, c: &mut DbConn, g: u32, set: &[u32]) -> Result<()> {
    let ids = set.to_vec();
    in_tx!(
        c,
        async {
            diesel::update(
                im_group_member::table
                    .filter(im_group_member::group_id.eq(g))
                    .filter(im_group_member::user_id.eq_any(ids)),
            )
            .set(im_group_member::status.eq(1u8))
            .execute(c)
            .await
            .ctx("IMGroupMember remove")?;
            recount(c, g).await
        }
        .await
    )?;
    let fields: Vec<String> = set.iter().map(u32::to_string).collect();
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    store
        .group_member()
        .hdel(&member_key(g), &refs)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::atoi;

    #[test]
    fn atoi_is_lenient() {
        assert_eq!(atoi("12"), 12);
        assert_eq!(atoi(" 7x"), 7);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("-1"), u32::MAX);
    }
}

/// `SELECT userId, groupId ... WHERE status = 0 AND userId IN (?, ...)` for `n` users.
fn groups_of_users_sql(n: usize) -> String {
    let mut sql =
        String::from("SELECT userId, groupId FROM IMGroupMember WHERE status = 0 AND userId IN (?");
    for _ in 1..n {
        sql.push_str(", ?");
    }
    sql.push_str(") ORDER BY userId, updated DESC, id DESC");
    sql
}

#[derive(diesel::QueryableByName)]
struct MemberRow {
    #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::Integer>)]
    #[diesel(column_name = "userId")]
    user_id: u32,
    #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::Integer>)]
    #[diesel(column_name = "groupId")]
    group_id: u32,
}

/// Coalescer behind [`Groups::group_ids_of_user`]: the group lists of concurrent calls
/// (unread counts, mostly) come from one slave statement, an `IN` list of the users padded to
/// a fixed size so the text stays prepared. Reads `IMGroupMember`.
pub(crate) fn groups_of_user_coalescer(
    pools: crate::store::Pools,
    shape: crate::batch::Shape,
    timings: &crate::timing::Timings,
) -> crate::batch::Coalescer<u32, Vec<u32>> {
    let texts = std::sync::Arc::new(crate::batch::BucketTexts::new(groups_of_users_sql));
    crate::batch::Coalescer::spawn("groups_of_user", shape, timings, move |users: Vec<u32>| {
        let pools = pools.clone();
        let texts = texts.clone();
        async move {
            let n = users.len();
            let outcome = pools
                .slave(async |c| {
                    let (sql, size) = texts.for_len(n);
                    let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
                    for i in 0..size {
                        let u = users.get(i).or(users.last()).copied().unwrap_or(0);
                        q = q.bind::<diesel::sql_types::Unsigned<diesel::sql_types::Integer>, _>(u);
                    }
                    let rows: Vec<MemberRow> = crate::sql::CacheExt::cached(q)
                        .load(c)
                        .await
                        .ctx("IMGroupMember groups of users (batch)")?;
                    Ok(users
                        .iter()
                        .map(|&u| {
                            rows.iter()
                                .filter(|r| r.user_id == u)
                                .map(|r| r.group_id)
                                .collect()
                        })
                        .collect())
                })
                .await;
            crate::batch::fan_out(n, outcome)
        }
    })
}
