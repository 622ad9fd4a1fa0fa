//! Schema DDL (`sql/001_schema.sql`, embedded) and its idempotent migration.
//! Only `CREATE TABLE IF NOT EXISTS`: safe on existing TeamTalk deployments.

use diesel_async::RunQueryDsl;

use super::{Db, DbConn, Pools};
use crate::error::{Error, Result};

/// The embedded DDL.
pub const SCHEMA_SQL: &str = include_str!("../../../../sql/001_schema.sql");

/// The DDL split into statements (on `;` at the end of a line), comments dropped.
pub fn statements() -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in SCHEMA_SQL.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || (trimmed.is_empty() && cur.is_empty()) {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if trimmed.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            cur.clear();
        }
    }
    let rest = cur.trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// Run every DDL statement on `conn` (creates missing tables; never drops or alters).
pub(crate) async fn migrate_conn(conn: &mut DbConn) -> Result<()> {
    for stmt in statements() {
        diesel::sql_query(stmt.as_str())
            .execute(conn)
            .await
            .map_err(|e| Error::mysql(format!("migrate: {}", first_line(&stmt)), e))?;
    }
    Ok(())
}

/// Run the migration on the master pool, the whole set in one unit of work (each DDL
/// statement is quick).
pub(crate) async fn migrate(pools: &Pools) -> Result<()> {
    pools
        .run(Db::Master, false, async |c| migrate_conn(c).await)
        .await
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_split() {
        let s = super::statements();
        assert_eq!(s.len(), 26);
        assert!(s
            .iter()
            .all(|x| x.starts_with("CREATE TABLE IF NOT EXISTS")));
    }
}
