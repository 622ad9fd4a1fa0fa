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
use diesel_async::RunQueryDsl;

use crate::db::lock::{group_lock, with_lock};
use crate::db::sql::{last_insert_id, CacheExt};
use crate::db::tables::{im_group, im_group_member};
use crate::db::{DbConn, DbPool};
use crate::error::{MysqlResultExt, Result};
use crate::redis::keys::{group_counter_key, member_key, shield_field, shield_key};
use crate::redis::Cache;

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

/// Lenient integer parse of a Redis value like the original's `atoi` (garbage → 0, Q-D02),
/// wrapped into u32 like the original's int → uint32 conversion.
fn atoi(s: &str) -> u32 {
    crate::repo::unread::atoi(s) as u32
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

/// Makes sure `group_member_<G>` exists when the group has active members: if the hash is
/// missing, reads (under the group lock) the IMGroupMember rows with status 0 and writes
/// (HSET) `<U>` → `updated` for each. Returns whether the hash exists afterwards (false for
/// a group without active members, which stays invalid). Give it a master pool.
pub(crate) async fn ensure_member_hash(
    pool: &mut DbPool<'_>,
    members: &Cache,
    group_id: u32,
) -> Result<bool> {
    let key = member_key(group_id);
    if members.exists(&key).await? {
        return Ok(true);
    }
    if group_id == 0 {
        return Ok(false);
    }
    pool.run(async |c| {
        // Unknown / emptied groups answer without taking the lock.
        if active_members(c, group_id).await?.is_empty() {
            return Ok(false);
        }
        with_lock(c, &group_lock(group_id), async |c: &mut DbConn| {
            rebuild_locked(members, c, group_id).await
        })
        .await
    })
    .await
}

/// HGET `group_member_<G>` `<U>`, rebuilding a missing hash first.
async fn member_field(
    pool: &mut DbPool<'_>,
    members: &Cache,
    user_id: u32,
    group_id: u32,
) -> Result<Option<String>> {
    let key = member_key(group_id);
    let field = user_id.to_string();
    if let Some(v) = members.hget(&key, &field).await? {
        return Ok(Some(v));
    }
    if members.exists(&key).await? || !ensure_member_hash(pool, members, group_id).await? {
        return Ok(None);
    }
    members.hget(&key, &field).await
}

/// member(U, G): whether field `<U>` of `group_member_<G>` is non-empty (HGET; a missing
/// hash is rebuilt from MySQL first).
pub(crate) async fn is_member(
    pool: &mut DbPool<'_>,
    members: &Cache,
    user_id: u32,
    group_id: u32,
) -> Result<bool> {
    Ok(member_field(pool, members, user_id, group_id)
        .await?
        .is_some_and(|v| !v.is_empty()))
}

/// joinTime(U, G): field `<U>` of `group_member_<G>` as an integer; 0 when missing.
pub(crate) async fn join_time(
    pool: &mut DbPool<'_>,
    members: &Cache,
    user_id: u32,
    group_id: u32,
) -> Result<u32> {
    Ok(member_field(pool, members, user_id, group_id)
        .await?
        .map(|v| atoi(&v))
        .unwrap_or(0))
}

/// `(member, join time)` of `group_member_<G>` (HGETALL, rebuilt from MySQL when missing)
/// in lexicographic order of the decimal member ids (Q-G08).
pub(crate) async fn member_times(
    pool: &mut DbPool<'_>,
    members: &Cache,
    group_id: u32,
) -> Result<Vec<(u32, u32)>> {
    let key = member_key(group_id);
    let mut map = members.hgetall(&key).await?;
    if map.is_empty() && ensure_member_hash(pool, members, group_id).await? {
        map = members.hgetall(&key).await?;
    }
    Ok(map.iter().map(|(k, v)| (atoi(k), atoi(v))).collect())
}

/// Member ids of `group_member_<G>` (HKEYS: the reply needs no join times), rebuilt from
/// MySQL first when the hash is missing, in lexicographic order of the decimal ids.
pub(crate) async fn member_ids(
    pool: &mut DbPool<'_>,
    members: &Cache,
    group_id: u32,
) -> Result<Vec<u32>> {
    let key = member_key(group_id);
    let mut ids = members.hkeys(&key).await?;
    if ids.is_empty() && ensure_member_hash(pool, members, group_id).await? {
        ids = members.hkeys(&key).await?;
    }
    Ok(ids.iter().map(|k| atoi(k)).collect())
}

/// Reads the active `(user, group)` memberships of many users in one query
/// (IMGroupMember status 0), ordered by user, then `updated` desc, `id` desc.
pub(crate) async fn group_ids_of_users(
    pool: &mut DbPool<'_>,
    user_ids: &[u32],
) -> Result<Vec<(u32, u32)>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = user_ids.to_vec();
    pool.run(async move |c| {
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

/// Reads `(id, version)` of the IMGroup rows with the given ids and type 1
/// (normal groups), ordered `updated` desc; IMGroup.status is ignored (Q-G09).
pub(crate) async fn normal_versions(
    pool: &mut DbPool<'_>,
    group_ids: &[u32],
) -> Result<Vec<(u32, u32)>> {
    if group_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = group_ids.to_vec();
    pool.run(async move |c| {
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

/// Reads the IMGroup rows with the given ids (any status), ordered `updated` desc.
pub(crate) async fn by_ids(pool: &mut DbPool<'_>, group_ids: &[u32]) -> Result<Vec<Group>> {
    if group_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = group_ids.to_vec();
    pool.run(async move |c| {
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

/// Reads `(creator, type)` of group `group_id`; `None` when there is no row.
pub(crate) async fn creator_and_type(
    pool: &mut DbPool<'_>,
    group_id: u32,
) -> Result<Option<(u32, u32)>> {
    let row: Option<(u32, u8)> = pool
        .run(async move |c| {
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

/// Creates a group: writes an IMGroup row (status 0, version 1, lastChated 0,
/// created = updated = now), SET `group_msg_id_<G>` = 0 (unread), deletes any
/// IMGroupMember rows and DEL `group_member_<G>` left for the new id, then
/// [`Groups::insert_members`]. Returns the new group id. `members` is de-duplicated;
/// IMGroup.userCnt ends up as the number of members (Q-G03 fix).
pub(crate) async fn create(
    pool: &mut DbPool<'_>,
    unread: &Cache,
    member_hashes: &Cache,
    group: &NewGroup,
    members: &[u32],
    now: u32,
) -> Result<u32> {
    let g = group.clone();
    let mut set: Vec<u32> = members.to_vec();
    set.sort_unstable();
    set.dedup();
    let count = u32::try_from(set.len()).unwrap_or(u32::MAX);
    let group_id = pool
        .transaction(async move |c| {
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
            let id = last_insert_id(c).await?;
            diesel::delete(im_group_member::table.filter(im_group_member::group_id.eq(id)))
                .execute(c)
                .await
                .ctx("IMGroupMember cleanup of new group")?;
            Ok(id)
        })
        .await?;
    unread.set(&group_counter_key(group_id), "0").await?;
    member_hashes.del(&[member_key(group_id).as_str()]).await?;
    insert_members(pool, member_hashes, group_id, &set, now).await?;
    Ok(group_id)
}

/// insertMembers(G, set) of docs/compatibility.md#group-membership-helpers, concurrency-safe: under the group's
/// membership lock, reads the existing IMGroupMember rows of the users (any status),
/// reactivates them (status 0, updated = now), inserts rows for the others, recounts
/// IMGroup.userCnt, then HSETs `group_member_<G>` `<U>` = now for every user of the set
/// (rebuilding the other active members first if the hash was missing). Users already
/// active are left as they are. Returns the users that became active members (sorted;
/// empty, writing nothing, for an empty set or `G = 0`). Give it a master pool.
pub(crate) async fn insert_members(
    pool: &mut DbPool<'_>,
    members: &Cache,
    group_id: u32,
    users: &[u32],
    now: u32,
) -> Result<Vec<u32>> {
    let mut set: Vec<u32> = users.to_vec();
    set.sort_unstable();
    set.dedup();
    if set.is_empty() || group_id == 0 {
        return Ok(Vec::new());
    }
    pool.run(async |c| {
        with_lock(c, &group_lock(group_id), async |c: &mut DbConn| {
            insert_locked(members, c, group_id, &set, now).await
        })
        .await
    })
    .await
}

/// Removes members: under the group's membership lock, writes status = 1 on the
/// IMGroupMember rows of `G` for those users (`updated` untouched, Q-G07), recounts
/// IMGroup.userCnt, and HDELs them from `group_member_<G>`. Returns the users that were
/// members (active rows, or fields of the hash; sorted); an empty list does nothing. Give
/// it a master pool.
pub(crate) async fn remove_members(
    pool: &mut DbPool<'_>,
    members: &Cache,
    group_id: u32,
    users: &[u32],
) -> Result<Vec<u32>> {
    let mut set: Vec<u32> = users.to_vec();
    set.sort_unstable();
    set.dedup();
    if set.is_empty() {
        return Ok(Vec::new());
    }
    pool.run(async |c| {
        with_lock(c, &group_lock(group_id), async |c: &mut DbConn| {
            remove_locked(members, c, group_id, &set).await
        })
        .await
    })
    .await
}

/// Writes IMGroup.version += 1 for `group_id`; true when the row exists.
pub(crate) async fn bump_version(pool: &mut DbPool<'_>, group_id: u32) -> Result<bool> {
    let n = pool
        .run(async move |c| {
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
pub(crate) async fn set_push_shield(
    shields: &Cache,
    group_id: u32,
    user_id: u32,
    status: u32,
) -> Result<()> {
    shields
        .hset(
            &shield_key(group_id),
            &shield_field(user_id),
            &status.to_string(),
        )
        .await
        .map(|_| ())
}

/// Reads HGETALL `group_set_<G>` once and returns `(user, status)` for each requested
/// user in request order (duplicates kept): the integer value of `<U>_1`, 0 if absent.
pub(crate) async fn push_shields(
    shields: &Cache,
    group_id: u32,
    users: &[u32],
) -> Result<Vec<(u32, u32)>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let map = shields.hgetall(&shield_key(group_id)).await?;
    Ok(users
        .iter()
        .map(|&u| {
            let v = map.get(&shield_field(u)).map(|s| atoi(s)).unwrap_or(0);
            (u, v)
        })
        .collect())
}

/// Reads `(id, lastChated)` of the IMGroup rows with status 0 and
/// `lastChated >= since` (and lastChated ≠ 0), ascending id — the sync scan.
pub(crate) async fn chatted_since(pool: &mut DbPool<'_>, since: u32) -> Result<Vec<(u32, u32)>> {
    pool.run(async move |c| {
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

/// Writes IMGroup.lastChated = `t` and `updated` untouched (used by tests and
/// tools; the message path sets it itself).
pub(crate) async fn set_last_chated(pool: &mut DbPool<'_>, group_id: u32, t: u32) -> Result<bool> {
    let n = pool
        .run(async move |c| {
            diesel::update(im_group::table.find(group_id))
                .set(im_group::last_chated.eq(t))
                .execute(c)
                .await
                .ctx("IMGroup set lastChated")
        })
        .await?;
    Ok(n > 0)
}

/// Reads all IMGroupMember rows of `G` as `(userId, status)` ordered by id
/// (diagnostics and tests: duplicates are visible here).
pub(crate) async fn member_rows(pool: &mut DbPool<'_>, group_id: u32) -> Result<Vec<(u32, u32)>> {
    let rows: Vec<(u32, u8)> = pool
        .run(async move |c| {
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

/// Rebuild of a missing member hash; the caller holds the group lock.
async fn rebuild_locked(cache: &Cache, c: &mut DbConn, g: u32) -> Result<bool> {
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

async fn insert_locked(
    cache: &Cache,
    c: &mut DbConn,
    g: u32,
    set: &[u32],
    now: u32,
) -> Result<Vec<u32>> {
    let ids = set.to_vec();
    let had_missing_hash = !cache.exists(&member_key(g)).await?;
    let added = DbPool::Conn(&mut *c)
        .transaction(async |c| {
            let rows: Vec<(u32, u8, u32)> = im_group_member::table
                .filter(im_group_member::group_id.eq(g))
                .filter(im_group_member::user_id.eq_any(ids.clone()))
                .select((
                    im_group_member::user_id,
                    im_group_member::status,
                    im_group_member::updated,
                ))
                .load(c)
                .await
                .ctx("IMGroupMember existing rows")?;
            // Members already active stay as they are (join time kept): an add that another
            // request (or instance) made first changes nothing here.
            let active: Vec<u32> = rows.iter().filter(|r| r.1 == 0).map(|r| r.0).collect();
            let active_since: Vec<(u32, u32)> = rows
                .iter()
                .filter(|r| r.1 == 0)
                .map(|r| (r.0, r.2))
                .collect();
            let had: Vec<u32> = rows.iter().map(|r| r.0).collect();
            let inactive: Vec<u32> = had
                .iter()
                .copied()
                .filter(|u| !active.contains(u))
                .collect();
            if !inactive.is_empty() {
                diesel::update(
                    im_group_member::table
                        .filter(im_group_member::group_id.eq(g))
                        .filter(im_group_member::user_id.eq_any(inactive)),
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
            recount(c, g).await?;
            let joined: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|u| !active.contains(u))
                .collect();
            Ok((joined, active_since))
        })
        .await?;
    let (mut added, active_since) = added;
    let key = member_key(g);
    let mut pairs: HashMap<u32, u32> = HashMap::new();
    if had_missing_hash {
        // Q-R01/Q-R02: bring back the other active members too (their join time = updated).
        pairs.extend(active_members(c, g).await?);
    } else if !active_since.is_empty() {
        // Active in MySQL but missing from the hash (an earlier add whose HSET failed after
        // its commit): written now with their join time, and they count as joined.
        let asks: Vec<(String, String)> = active_since
            .iter()
            .map(|&(u, _)| (key.clone(), u.to_string()))
            .collect();
        let present = cache.hget_many(&asks).await?;
        for (&(u, since), v) in active_since.iter().zip(present) {
            if v.is_none() {
                pairs.insert(u, since);
                added.push(u);
            }
        }
        added.sort_unstable();
    }
    for u in &added {
        pairs.entry(*u).or_insert(now);
    }
    if pairs.is_empty() {
        return Ok(added);
    }
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(u, t)| (u.to_string(), t.to_string()))
        .collect();
    cache.hset_many(&key, &pairs).await?;
    Ok(added)
}

async fn remove_locked(cache: &Cache, c: &mut DbConn, g: u32, set: &[u32]) -> Result<Vec<u32>> {
    let ids = set.to_vec();
    let removed = DbPool::Conn(&mut *c)
        .transaction(async |c| {
            let active: Vec<u32> = im_group_member::table
                .filter(im_group_member::group_id.eq(g))
                .filter(im_group_member::user_id.eq_any(ids.clone()))
                .filter(im_group_member::status.eq(0u8))
                .select(im_group_member::user_id)
                .load(c)
                .await
                .ctx("IMGroupMember active rows")?;
            diesel::update(
                im_group_member::table
                    .filter(im_group_member::group_id.eq(g))
                    .filter(im_group_member::user_id.eq_any(ids)),
            )
            .set(im_group_member::status.eq(1u8))
            .execute(c)
            .await
            .ctx("IMGroupMember remove")?;
            recount(c, g).await?;
            Ok(active)
        })
        .await?;
    let key = member_key(g);
    let fields: Vec<String> = set.iter().map(u32::to_string).collect();
    // Members still in the hash whose rows were already inactive (an earlier removal whose
    // HDEL failed after its commit) leave now too, and count as removed.
    let asks: Vec<(String, String)> = fields.iter().map(|f| (key.clone(), f.clone())).collect();
    let present = cache.hget_many(&asks).await?;
    let mut removed = removed;
    removed.extend(set.iter().zip(present).filter_map(|(&u, v)| v.map(|_| u)));
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    cache.hdel(&key, &refs).await?;
    removed.sort_unstable();
    removed.dedup();
    Ok(removed)
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
