//! IMUser: accounts, profiles, signatures and the user-level push shield.
//! Also the informational Redis key `total_user_update` (instance `unread`).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::sql::last_insert_id;
use crate::db::tables::im_user;
use crate::db::DbPool;
use crate::error::{MysqlResultExt, Result};

/// One IMUser row. NULL columns read as empty / 0 (Q-D03).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u32,
    /// 1 male, 2 female, 0 unknown.
    pub sex: u32,
    /// Login name (also sent as `user_real_name`).
    pub name: String,
    pub domain: String,
    pub nick: String,
    /// lowercase hex md5(md5hex(clear) + salt).
    pub password: String,
    pub salt: String,
    pub phone: String,
    pub email: String,
    pub avatar: String,
    pub depart_id: u32,
    /// 0 may log in; 3 = resigned (admin console).
    pub status: u32,
    pub created: u32,
    pub updated: u32,
    /// 1 = push do-not-disturb on.
    pub push_shield_status: u32,
    pub sign_info: String,
}

#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = im_user, check_for_backend(diesel::mysql::Mysql))]
pub(crate) struct UserRow {
    pub(crate) id: u32,
    pub(crate) sex: u8,
    pub(crate) name: String,
    pub(crate) domain: String,
    pub(crate) nick: String,
    pub(crate) password: String,
    pub(crate) salt: String,
    pub(crate) phone: String,
    pub(crate) email: String,
    pub(crate) avatar: Option<String>,
    pub(crate) depart_id: u32,
    pub(crate) status: Option<u8>,
    pub(crate) created: u32,
    pub(crate) updated: u32,
    pub(crate) push_shield_status: u8,
    pub(crate) sign_info: String,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            sex: r.sex.into(),
            name: r.name,
            domain: r.domain,
            nick: r.nick,
            password: r.password,
            salt: r.salt,
            phone: r.phone,
            email: r.email,
            avatar: r.avatar.unwrap_or_default(),
            depart_id: r.depart_id,
            status: r.status.unwrap_or(0).into(),
            created: r.created,
            updated: r.updated,
            push_shield_status: r.push_shield_status.into(),
            sign_info: r.sign_info,
        }
    }
}

/// Fields of a new account (used by seeding tools and tests; db_proxy itself never
/// creates users — the admin console does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub nick: String,
    pub domain: String,
    pub password: String,
    pub salt: String,
    pub sex: u32,
    pub phone: String,
    pub email: String,
    pub avatar: String,
    pub depart_id: u32,
    pub status: u32,
    pub sign_info: String,
}

/// Lowercase hex MD5, the digest format of the TeamTalk password scheme.
pub fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}

/// The stored password for a clear-text password and salt:
/// `md5hex(md5hex(clear) + salt)` (docs/compatibility.md#password-scheme).
pub fn password_hash(clear: &str, salt: &str) -> String {
    let client = md5_hex(clear.as_bytes());
    md5_hex(format!("{client}{salt}").as_bytes())
}

/// Reads the users with the given ids, any status, ascending id; duplicates
/// collapse and unknown ids vanish. Empty input → empty output without a query.
pub(crate) async fn by_ids(pool: &mut DbPool<'_>, ids: &[u32]) -> Result<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = ids.to_vec();
    let rows: Vec<UserRow> = pool
        .run(async move |c| {
            im_user::table
                .filter(im_user::id.eq_any(ids))
                .order(im_user::id.asc())
                .select(UserRow::as_select())
                .load(c)
                .await
                .ctx("IMUser by ids")
        })
        .await?;
    Ok(rows.into_iter().map(User::from).collect())
}

/// Reads the users changed since `since`, ascending id: when `since` is 0 all
/// users with `status != 3`, otherwise every user with `updated >= since` (any status,
/// so resigned users are delivered as updates) — docs/compatibility.md#changed-users.
pub(crate) async fn changed_since(pool: &mut DbPool<'_>, since: u32) -> Result<Vec<User>> {
    let rows: Vec<UserRow> = pool
        .run(async move |c| {
            let query = im_user::table
                .order(im_user::id.asc())
                .select(UserRow::as_select())
                .into_boxed();
            let query = if since == 0 {
                // NULL status counts as 0 (Q-D03), which is not 3.
                query.filter(im_user::status.ne(3u8).or(im_user::status.is_null()))
            } else {
                query.filter(im_user::updated.ge(since))
            };
            query.load(c).await.ctx("IMUser changed since")
        })
        .await?;
    Ok(rows.into_iter().map(User::from).collect())
}

/// Reads MAX(IMUser.updated); 0 for an empty table.
pub(crate) async fn max_updated(pool: &mut DbPool<'_>) -> Result<u32> {
    let max: Option<u32> = pool
        .run(async |c| {
            im_user::table
                .select(diesel::dsl::max(im_user::updated))
                .first(c)
                .await
                .ctx("MAX(IMUser.updated)")
        })
        .await?;
    Ok(max.unwrap_or(0))
}

/// Writes `sign_info` and `updated = now` of user `id`. True when the row
/// exists (matched-rows semantics, Q-D05: the same text again still succeeds).
pub(crate) async fn set_sign_info(
    pool: &mut DbPool<'_>,
    id: u32,
    sign_info: &str,
    now: u32,
) -> Result<bool> {
    let sign_info = sign_info.to_owned();
    let n = pool
        .run(async move |c| {
            diesel::update(im_user::table.find(id))
                .set((im_user::sign_info.eq(sign_info), im_user::updated.eq(now)))
                .execute(c)
                .await
                .ctx("IMUser set sign_info")
        })
        .await?;
    Ok(n > 0)
}

/// Writes `push_shield_status` and `updated = now` of user `id`. True when the
/// row exists (matched rows, Q-D05). The value is stored verbatim (clamped to the
/// column's tinyint range).
pub(crate) async fn set_push_shield(
    pool: &mut DbPool<'_>,
    id: u32,
    status: u32,
    now: u32,
) -> Result<bool> {
    let status = u8::try_from(status).unwrap_or(u8::MAX);
    let n = pool
        .run(async move |c| {
            diesel::update(im_user::table.find(id))
                .set((
                    im_user::push_shield_status.eq(status),
                    im_user::updated.eq(now),
                ))
                .execute(c)
                .await
                .ctx("IMUser set push_shield_status")
        })
        .await?;
    Ok(n > 0)
}

/// Reads `push_shield_status` of user `id`; `None` when there is no such user.
pub(crate) async fn push_shield(pool: &mut DbPool<'_>, id: u32) -> Result<Option<u32>> {
    let status: Option<u8> = pool
        .run(async move |c| {
            im_user::table
                .find(id)
                .select(im_user::push_shield_status)
                .first(c)
                .await
                .optional()
                .ctx("IMUser push_shield_status")
        })
        .await?;
    Ok(status.map(u32::from))
}

/// Reads `(id, push_shield_status)` for the given ids (one query for a batch).
pub(crate) async fn push_shields(pool: &mut DbPool<'_>, ids: &[u32]) -> Result<Vec<(u32, u32)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = ids.to_vec();
    let rows: Vec<(u32, u8)> = pool
        .run(async move |c| {
            im_user::table
                .filter(im_user::id.eq_any(ids))
                .select((im_user::id, im_user::push_shield_status))
                .load(c)
                .await
                .ctx("IMUser push_shield_status batch")
        })
        .await?;
    Ok(rows.into_iter().map(|(id, s)| (id, s.into())).collect())
}

/// Writes a new IMUser row with `created = updated = now`; returns its id.
pub(crate) async fn insert(pool: &mut DbPool<'_>, user: &NewUser, now: u32) -> Result<u32> {
    let u = user.clone();
    pool.transaction(async move |c| {
        diesel::insert_into(im_user::table)
            .values((
                im_user::sex.eq(u8::try_from(u.sex).unwrap_or(0)),
                im_user::name.eq(u.name),
                im_user::domain.eq(u.domain),
                im_user::nick.eq(u.nick),
                im_user::password.eq(u.password),
                im_user::salt.eq(u.salt),
                im_user::phone.eq(u.phone),
                im_user::email.eq(u.email),
                im_user::avatar.eq(Some(u.avatar)),
                im_user::depart_id.eq(u.depart_id),
                im_user::status.eq(Some(u8::try_from(u.status).unwrap_or(u8::MAX))),
                im_user::created.eq(now),
                im_user::updated.eq(now),
                im_user::push_shield_status.eq(0u8),
                im_user::sign_info.eq(u.sign_info),
            ))
            .execute(c)
            .await
            .ctx("IMUser insert")?;
        last_insert_id(c).await
    })
    .await
}

/// Reads whether IMUser has any row (used by seeding tools).
pub(crate) async fn is_empty(pool: &mut DbPool<'_>) -> Result<bool> {
    let any: Option<u32> = pool
        .run(async |c| {
            im_user::table
                .select(im_user::id)
                .first(c)
                .await
                .optional()
                .ctx("IMUser any row")
        })
        .await?;
    Ok(any.is_none())
}
