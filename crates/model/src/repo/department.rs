//! IMDepart: the department tree, read incrementally by clients.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::sql::last_insert_id;
use crate::db::tables::im_depart;
use crate::db::DbPool;
use crate::error::{MysqlResultExt, Result};

/// One IMDepart row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = im_depart, check_for_backend(diesel::mysql::Mysql))]
pub struct Department {
    pub id: u32,
    #[diesel(column_name = depart_name)]
    pub name: String,
    pub priority: u32,
    pub parent_id: u32,
    /// 0 ok, 1 deleted.
    pub status: u32,
    pub created: u32,
    pub updated: u32,
}

/// Reads every department with `updated > since` (strictly greater, any
/// status), ascending id — one query for what the original did in two.
pub(crate) async fn changed_since(pool: &mut DbPool<'_>, since: u32) -> Result<Vec<Department>> {
    pool.run(async move |c| {
        im_depart::table
            .filter(im_depart::updated.gt(since))
            .order(im_depart::id.asc())
            .select(Department::as_select())
            .load(c)
            .await
            .ctx("IMDepart changed since")
    })
    .await
}

/// Writes a new department with `created = updated = now`; returns its id.
pub(crate) async fn insert(
    pool: &mut DbPool<'_>,
    name: &str,
    parent_id: u32,
    priority: u32,
    now: u32,
) -> Result<u32> {
    let name = name.to_owned();
    pool.transaction(async move |c| {
        diesel::insert_into(im_depart::table)
            .values((
                im_depart::depart_name.eq(name),
                im_depart::priority.eq(priority),
                im_depart::parent_id.eq(parent_id),
                im_depart::status.eq(0u32),
                im_depart::created.eq(now),
                im_depart::updated.eq(now),
            ))
            .execute(c)
            .await
            .ctx("IMDepart insert")?;
        last_insert_id(c).await
    })
    .await
}
