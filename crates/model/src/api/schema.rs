//! The schema DDL (`sql/001_schema.sql`, embedded) and its idempotent migration (only
//! `CREATE TABLE IF NOT EXISTS`: safe on existing TeamTalk deployments).

use crate::error::Result;
use crate::Store;

pub use crate::db::migrate::{statements, SCHEMA_SQL};

/// Create the missing tables on master (never drops or alters), all in one unit of work.
pub async fn migrate(store: &Store) -> Result<()> {
    crate::db::migrate::migrate(store.pools()).await
}
