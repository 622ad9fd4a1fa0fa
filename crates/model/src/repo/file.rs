//! IMTransmitFile: offline file transfers waiting for their receiver. Rows never expire and
//! duplicates are allowed (Q-X08 kept); every value is bound (Q-S03 fixed).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::sql::last_insert_id;
use crate::db::tables::im_transmit_file;
use crate::db::DbPool;
use crate::error::{MysqlResultExt, Result};

/// One offline file (the columns the protocol carries).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = im_transmit_file, check_for_backend(diesel::mysql::Mysql))]
pub struct OfflineFile {
    pub id: u32,
    pub from_id: u32,
    pub to_id: u32,
    pub file_name: String,
    pub size: u32,
    pub task_id: String,
    #[diesel(deserialize_as = u8)]
    pub status: u32,
    pub created: u32,
    pub updated: u32,
}

/// Fields of an offline file to record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewOfflineFile {
    pub from_id: u32,
    pub to_id: u32,
    pub task_id: String,
    pub file_name: String,
    pub size: u32,
}

/// Reads the offline files for `to_id` with status 0, ordered `created` asc
/// (then id asc).
pub(crate) async fn offline_for(pool: &mut DbPool<'_>, to_id: u32) -> Result<Vec<OfflineFile>> {
    pool.run(async move |c| {
        im_transmit_file::table
            .filter(im_transmit_file::to_id.eq(to_id))
            .filter(im_transmit_file::status.eq(0u8))
            .order((im_transmit_file::created.asc(), im_transmit_file::id.asc()))
            .select(OfflineFile::as_select())
            .load(c)
            .await
            .ctx("IMTransmitFile offline for user")
    })
    .await
}

/// Writes a new IMTransmitFile row (status 0, created = updated = now); no
/// duplicate check. Returns the new row id.
pub(crate) async fn add(pool: &mut DbPool<'_>, file: &NewOfflineFile, now: u32) -> Result<u32> {
    let f = file.clone();
    pool.transaction(async move |c| {
        diesel::insert_into(im_transmit_file::table)
            .values((
                im_transmit_file::from_id.eq(f.from_id),
                im_transmit_file::to_id.eq(f.to_id),
                im_transmit_file::file_name.eq(f.file_name),
                im_transmit_file::size.eq(f.size),
                im_transmit_file::task_id.eq(f.task_id),
                im_transmit_file::status.eq(0u8),
                im_transmit_file::created.eq(now),
                im_transmit_file::updated.eq(now),
            ))
            .execute(c)
            .await
            .ctx("IMTransmitFile insert")?;
        last_insert_id(c).await
    })
    .await
}

/// Deletes the IMTransmitFile rows with this `fromId`, `toId` and `taskId`
/// (all bound, Q-S03); returns the number of rows deleted.
pub(crate) async fn delete(
    pool: &mut DbPool<'_>,
    from_id: u32,
    to_id: u32,
    task_id: &str,
) -> Result<usize> {
    let task = task_id.to_owned();
    pool.run(async move |c| {
        diesel::delete(
            im_transmit_file::table
                .filter(im_transmit_file::from_id.eq(from_id))
                .filter(im_transmit_file::to_id.eq(to_id))
                .filter(im_transmit_file::task_id.eq(task)),
        )
        .execute(c)
        .await
        .ctx("IMTransmitFile delete")
    })
    .await
}
