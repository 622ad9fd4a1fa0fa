//! IMUser: accounts, profiles, signatures and the user-level push shield.
//! Also the informational Redis key `total_user_update` (instance `unread`).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::error::{MysqlResultExt, Result};
use crate::tables::im_user;
use crate::Store;

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
struct UserRow {
    id: u32,
    sex: u8,
    name: String,
    domain: String,
    nick: String,
    password: String,
    salt: String,
    phone: String,
    email: String,
    avatar: Option<String>,
    depart_id: u32,
    status: Option<u8>,
    created: u32,
    updated: u32,
    push_shield_status: u8,
    sign_info: String,
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

/// Repository of IMUser. Obtain with [`Store::users`].
#[derive(Clone, Copy)]
pub struct Users<'a> {
    store: &'a Store,
}

impl Store {
    /// IMUser repository.
    pub fn users(&self) -> Users<'_> {
        Users { store: self }
    }
}

/// Lowercase hex MD5, the digest format of the TeamTalk password scheme.
pub fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}

/// The stored password for a clear-text password and salt:
/// `md5hex(md5hex(clear) + salt)` (schema.md §4).
pub fn password_hash(clear: &str, salt: &str) -> String {
    let client = md5_hex(clear.as_bytes());
    md5_hex(format!("{client}{salt}").as_bytes())
}

impl Users<'_> {
    /// Reads (slave) the active account (`status = 0`) named `name`, compared by the column
    /// collation (Q-L06); with several rows the last one wins (Q-L05). `None` if no row.
    pub async fn find_for_login(&self, name: &str) -> Result<Option<User>> {
        self.store.batches().login.call(name.to_owned()).await
    }

    /// Reads (slave) the users with the given ids, any status, ascending id; duplicates
    /// collapse and unknown ids vanish. Empty input → empty output without a query.
    pub async fn by_ids(&self, ids: &[u32]) -> Result<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let rows: Vec<UserRow> = self
            .store
            .slave(async move |c| {
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

    /// Reads (slave) the users changed since `since`, ascending id: when `since` is 0 all
    /// users with `status != 3`, otherwise every user with `updated >= since` (any status,
    /// so resigned users are delivered as updates) — behaviour.md §11.7.
    pub async fn changed_since(&self, since: u32) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = self
            .store
            .slave(async move |c| {
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

    /// Reads (slave) MAX(IMUser.updated); 0 for an empty table.
    pub async fn max_updated(&self) -> Result<u32> {
        let max: Option<u32> = self
            .store
            .slave(async |c| {
                im_user::table
                    .select(diesel::dsl::max(im_user::updated))
                    .first(c)
                    .await
                    .ctx("MAX(IMUser.updated)")
            })
            .await?;
        Ok(max.unwrap_or(0))
    }

    /// Writes (master) `sign_info` and `updated = now` of user `id`. True when the row
    /// exists (matched-rows semantics, Q-D05: the same text again still succeeds).
    pub async fn set_sign_info(&self, id: u32, sign_info: &str, now: u32) -> Result<bool> {
        let sign_info = sign_info.to_owned();
        let n = self
            .store
            .master(async move |c| {
                diesel::update(im_user::table.find(id))
                    .set((im_user::sign_info.eq(sign_info), im_user::updated.eq(now)))
                    .execute(c)
                    .await
                    .ctx("IMUser set sign_info")
            })
            .await?;
        Ok(n > 0)
    }

    /// Writes (master) `push_shield_status` and `updated = now` of user `id`. True when the
    /// row exists (matched rows, Q-D05). The value is stored verbatim (clamped to the
    /// column's tinyint range).
    pub async fn set_push_shield(&self, id: u32, status: u32, now: u32) -> Result<bool> {
        let status = u8::try_from(status).unwrap_or(u8::MAX);
        let n = self
            .store
            .master(async move |c| {
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

    /// Reads (slave) `push_shield_status` of user `id`; `None` when there is no such user.
    pub async fn push_shield(&self, id: u32) -> Result<Option<u32>> {
        let status: Option<u8> = self
            .store
            .slave(async move |c| {
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

    /// Reads (slave) `(id, push_shield_status)` for the given ids (one query for a batch).
    pub async fn push_shields(&self, ids: &[u32]) -> Result<Vec<(u32, u32)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let rows: Vec<(u32, u8)> = self
            .store
            .slave(async move |c| {
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

    /// Writes (master) a new IMUser row with `created = updated = now`; returns its id.
    pub async fn insert(&self, user: &NewUser, now: u32) -> Result<u32> {
        let u = user.clone();
        self.store
            .master_tx(async move |c| {
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
                crate::sql::last_insert_id(c).await
            })
            .await
    }

    /// Reads (slave) whether IMUser has any row (used by seeding tools).
    pub async fn is_empty(&self) -> Result<bool> {
        let any: Option<u32> = self
            .store
            .slave(async |c| {
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
}

/// One row of the batched login lookup: the request's index and its account.
#[derive(QueryableByName)]
struct TaggedUserRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    k: Option<i64>,
    #[diesel(embed)]
    user: UserRow,
}

const LOGIN_COLUMNS: &str = "id, sex, name, domain, nick, password, salt, phone, email, avatar, \
     departId AS depart_id, status, created, updated, push_shield_status, sign_info";

/// The batched login lookup for `n` distinct names (`2n` markers: the names for the CASE,
/// then for the IN list): every active row of any of them, tagged with the first name it
/// equals. Both comparisons are `name = ?` with a parameter, i.e. by the column's collation,
/// as the single lookup. One statement with one index range per name: MariaDB spends about
/// a third of the CPU of a `UNION ALL` of per-name parts on it (1,500 lookups of 16 names
/// from the CLI: 0.49–0.69 s against 1.59–1.63 s).
fn login_sql(n: usize) -> String {
    let case: String = (0..n).map(|k| format!(" WHEN name = ? THEN {k}")).collect();
    let marks = vec!["?"; n].join(", ");
    format!(
        "SELECT CAST(CASE{case} END AS SIGNED) AS k, {LOGIN_COLUMNS} FROM IMUser \
         WHERE name IN ({marks}) AND status = 0"
    )
}

/// Per-name part of the fallback lookup: the newest active row of that name.
fn login_part() -> String {
    format!(
        "SELECT CAST({{k}} AS SIGNED) AS k, {LOGIN_COLUMNS} FROM IMUser \
         WHERE name = ? AND status = 0 ORDER BY id DESC LIMIT 1"
    )
}

/// Coalescer behind [`Users::find_for_login`]: concurrent logins share one slave statement
/// ([`login_sql`], padded to a fixed size so the text stays prepared); per name the row with
/// the highest id wins, as in the single lookup. A row equal to two names of the batch under
/// the collation (`Bob` and `bob` with a case-insensitive one, `bob` and `bob ` with PAD
/// SPACE) is tagged with the first only; names left without a row are therefore looked up
/// again in the same unit of work, one `UNION ALL` part each with the single lookup's own
/// text, so every caller gets what a lookup of its own would have returned.
pub(crate) fn login_coalescer(
    pools: crate::store::Pools,
    shape: crate::batch::Shape,
    timings: &crate::timing::Timings,
) -> crate::batch::Coalescer<String, Option<User>> {
    let texts = std::sync::Arc::new(crate::batch::BucketTexts::new(login_sql));
    let parts = std::sync::Arc::new(crate::batch::BucketTexts::new(|n| {
        crate::batch::tagged_union(&login_part(), n)
    }));
    crate::batch::Coalescer::spawn("login", shape, timings, move |names: Vec<String>| {
        let pools = pools.clone();
        let texts = texts.clone();
        let parts = parts.clone();
        async move {
            let n = names.len();
            let outcome = pools
                .slave(async |c| {
                    // Distinct names (by bytes); each request reads its name's answer.
                    let mut distinct: Vec<&str> = Vec::with_capacity(n);
                    let at: Vec<usize> = names
                        .iter()
                        .map(
                            |name| match distinct.iter().position(|d| *d == name.as_str()) {
                                Some(i) => i,
                                None => {
                                    distinct.push(name.as_str());
                                    distinct.len() - 1
                                }
                            },
                        )
                        .collect();
                    let (sql, size) = texts.for_len(distinct.len());
                    let pad = |i: usize| distinct.get(i).or(distinct.last()).copied().unwrap_or("");
                    let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
                    for _ in 0..2 {
                        for i in 0..size {
                            q = q.bind::<diesel::sql_types::Varchar, _>(pad(i).to_owned());
                        }
                    }
                    let rows: Vec<TaggedUserRow> = crate::sql::CacheExt::cached(q)
                        .load(c)
                        .await
                        .ctx("IMUser by name (batch)")?;
                    let mut found: Vec<Option<UserRow>> = distinct.iter().map(|_| None).collect();
                    for r in rows {
                        let slot =
                            r.k.and_then(|k| usize::try_from(k).ok())
                                .and_then(|k| found.get_mut(k));
                        if let Some(slot) = slot {
                            if slot.as_ref().is_none_or(|have| have.id < r.user.id) {
                                *slot = Some(r.user);
                            }
                        }
                    }
                    // Names whose rows were all tagged with an equal earlier name (or that
                    // have none): the single lookup's text, all in one statement.
                    let missing: Vec<usize> = (0..distinct.len())
                        .filter(|&i| found[i].is_none())
                        .collect();
                    if !missing.is_empty() && missing.len() < distinct.len() {
                        let (sql, size) = parts.for_len(missing.len());
                        let mut q = diesel::sql_query(sql).into_boxed::<diesel::mysql::Mysql>();
                        for i in 0..size {
                            let d = missing.get(i).or(missing.last()).copied().unwrap_or(0);
                            q = q.bind::<diesel::sql_types::Varchar, _>(distinct[d].to_owned());
                        }
                        let again: Vec<TaggedUserRow> = crate::sql::CacheExt::cached(q)
                            .load(c)
                            .await
                            .ctx("IMUser by name (batch, again)")?;
                        for r in again {
                            let d =
                                r.k.and_then(|k| usize::try_from(k).ok())
                                    .and_then(|k| missing.get(k));
                            if let Some(&d) = d {
                                found[d] = Some(r.user);
                            }
                        }
                    }
                    let users: Vec<Option<User>> =
                        found.into_iter().map(|r| r.map(User::from)).collect();
                    Ok(at.iter().map(|&d| users[d].clone()).collect())
                })
                .await;
            crate::batch::fan_out(n, outcome)
        }
    })
}
