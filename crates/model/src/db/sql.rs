//! Static SQL texts as prepared statements kept per connection.
//!
//! diesel treats every `sql_query` as "unsafe to cache": diesel-async then prepares it,
//! executes it and closes it again — two round trips per statement. `CacheExt::cached`
//! marks a statement with a static text cacheable: diesel-async keeps it prepared on the connection, keyed by its SQL text, and
//! later uses cost one round trip. Texts built at run time (IN lists, UNION ALL batches)
//! keep using `diesel::sql_query` and stay uncached.

use diesel::mysql::Mysql;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A raw statement whose prepared form may be cached on the connection.
#[derive(Debug, Clone)]
#[must_use = "Queries are only executed when calling `load`, `get_result` or similar."]
pub(crate) struct Cached<Q>(Q);

/// `.cached()` on a finished `sql_query(..).bind(..)` chain. Use it only when the SQL text
/// is a static string (or one of a small fixed set): every distinct text stays prepared on
/// each pooled connection.
pub(crate) trait CacheExt: Sized {
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }
}

impl<Q: QueryFragment<Mysql>> CacheExt for Q {}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    // No static id: the cache key is the SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Mysql>> QueryFragment<Mysql> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Mysql) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

#[derive(diesel::QueryableByName)]
struct LastId {
    #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::BigInt>)]
    id: u64,
}

/// `LAST_INSERT_ID()` of the previous INSERT on this connection, as u32.
/// Must run on the same connection (and transaction) as the INSERT.
pub(crate) async fn last_insert_id(conn: &mut super::DbConn) -> crate::Result<u32> {
    use crate::error::MysqlResultExt;
    use diesel_async::RunQueryDsl;
    let r: LastId = diesel::sql_query("SELECT LAST_INSERT_ID() AS id")
        .cached()
        .get_result(conn)
        .await
        .ctx("LAST_INSERT_ID")?;
    u32::try_from(r.id)
        .map_err(|_| crate::error::Error::Invalid(format!("LAST_INSERT_ID() {} exceeds u32", r.id)))
}

/// Column `i` of a row, by position. diesel's by-name lookup compares the name of every
/// column before the wanted one, each converted from bytes: for 20-row pages that was about
/// a third of db-proxy's CPU under fetch. The hot rows are read by position instead; their
/// texts fix the column order.
pub(crate) fn col<'a, ST, T>(
    row: &impl diesel::row::NamedRow<'a, Mysql>,
    i: usize,
) -> diesel::deserialize::Result<T>
where
    T: diesel::deserialize::FromSql<ST, Mysql>,
{
    diesel::row::Row::get_value::<ST, T, usize>(row, i)
}
