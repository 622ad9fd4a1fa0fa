//! The relation ids of user pairs this process read or created lately ([`RelationIds`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::batch::timing::{Stage, Timings};
use crate::db::{DbConn, DbPool};
use crate::error::Result;
use crate::repo::relation::{self, PairIds};

/// Remembered relation ids and when each was read.
type Remembered = HashMap<(u32, u32), (u32, Instant)>;

/// Relation ids of user pairs this process read or created lately, kept for `ttl`: the
/// batched page and newest-message reads (fetches, unread counts, recent sessions) then
/// skip their `IMRelationShip` statement when every pair is known. A relation id, once
/// assigned, never changes, and db-proxy never removes a relation, so an entry can only be
/// stale when another program removes the row (status 1) or adds a second active row for the
/// pair; `ttl` bounds that, as replication lag bounds a read from the slave. Only found
/// relations are kept ("no relation" is always asked again). At most [`Self::MAX_ENTRIES`]
/// pairs; when full, expired entries are dropped, and everything if that leaves more than
/// three quarters of the bound.
pub(crate) struct RelationIds {
    ttl: Duration,
    known: std::sync::Mutex<Remembered>,
}

impl RelationIds {
    /// Bound on the remembered pairs (about 40 bytes each).
    pub(crate) const MAX_ENTRIES: usize = 16_384;

    /// Remember ids for `ttl`; a zero `ttl` remembers nothing.
    pub(crate) fn new(ttl: Duration) -> Self {
        RelationIds {
            ttl,
            known: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // The map is only a cache: a panic elsewhere while it was held leaves it usable.
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remember `(smallId, bigId) → id` pairs just read or written.
    pub(crate) fn remember(&self, found: impl IntoIterator<Item = ((u32, u32), u32)>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut known = self.lock();
        for (pair, id) in found {
            if known.len() >= Self::MAX_ENTRIES && !known.contains_key(&pair) {
                known.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
                // Room for a quarter of the bound at least, so that the sweep stays rare.
                if known.len() > Self::MAX_ENTRIES / 4 * 3 {
                    known.clear();
                }
            }
            known.insert(pair, (id, now));
        }
    }

    /// The remembered ids of `pairs` still within `ttl`, and the pairs to look up.
    pub(crate) fn split(&self, pairs: &[(u32, u32)]) -> (PairIds, Vec<(u32, u32)>) {
        let mut known_ids = HashMap::with_capacity(pairs.len());
        let mut missing = Vec::new();
        let now = Instant::now();
        let known = self.lock();
        for &pair in pairs {
            match known.get(&pair) {
                Some(&(id, at)) if now.duration_since(at) < self.ttl => {
                    known_ids.insert(pair, id);
                }
                _ => missing.push(pair),
            }
        }
        (known_ids, missing)
    }

    /// [`relation::find_pairs`] for the pairs not remembered (none: no statement), merged with the
    /// remembered ones; what the statement found is remembered.
    pub(crate) async fn find_pairs(
        &self,
        pool: &mut DbPool<'_>,
        pairs: &[(u32, u32)],
    ) -> Result<PairIds> {
        let (mut out, missing) = self.split(pairs);
        if !missing.is_empty() {
            let found = relation::find_pairs(pool, &missing).await?;
            self.remember(found.iter().map(|(&k, &v)| (k, v)));
            out.extend(found);
        }
        Ok(out)
    }
}

/// The two steps of a batched read, timed (see [`crate::batch::timing`]): `<name>: relations` (the
/// relation of every pair, from the remembered ids or one `IMRelationShip` statement) and
/// `<name>: rows` (the message statements).
#[derive(Clone)]
pub(crate) struct ReadStages {
    relation_ids: Arc<RelationIds>,
    relations: Arc<Stage>,
    pub(crate) rows: Arc<Stage>,
}

impl ReadStages {
    pub(crate) fn new(timings: &Timings, name: &str, relation_ids: Arc<RelationIds>) -> Self {
        ReadStages {
            relation_ids,
            relations: timings.stage(&format!("{name}: relations")),
            rows: timings.stage(&format!("{name}: rows")),
        }
    }

    /// The active relation of each `(smallId, bigId)` pair, timed as `<name>: relations`.
    pub(crate) async fn relations_on(
        &self,
        c: &mut DbConn,
        n: usize,
        pairs: &[(u32, u32)],
    ) -> Result<std::collections::HashMap<(u32, u32), u32>> {
        self.relations
            .time(n, self.relation_ids.find_pairs(&mut DbPool::Conn(c), pairs))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::RelationIds;
    use std::time::Duration;

    #[test]
    fn remembered_ids_expire_and_unknown_pairs_are_asked() {
        let ids = RelationIds::new(Duration::from_millis(50));
        ids.remember([((1, 2), 7), ((3, 4), 9)]);
        let (known, missing) = ids.split(&[(1, 2), (5, 6), (3, 4)]);
        assert_eq!(known.len(), 2);
        assert_eq!(known.get(&(1, 2)), Some(&7));
        assert_eq!(known.get(&(3, 4)), Some(&9));
        assert_eq!(missing, vec![(5, 6)]);
        std::thread::sleep(Duration::from_millis(60));
        let (known, missing) = ids.split(&[(1, 2), (3, 4)]);
        assert!(known.is_empty());
        assert_eq!(missing, vec![(1, 2), (3, 4)]);
    }

    #[test]
    fn zero_ttl_remembers_nothing() {
        let ids = RelationIds::new(Duration::ZERO);
        ids.remember([((1, 2), 7)]);
        let (known, missing) = ids.split(&[(1, 2)]);
        assert!(known.is_empty());
        assert_eq!(missing, vec![(1, 2)]);
    }

    #[test]
    fn the_map_stays_bounded() {
        let ids = RelationIds::new(Duration::from_secs(60));
        let n = u32::try_from(RelationIds::MAX_ENTRIES).unwrap_or(u32::MAX);
        ids.remember((0..n + 10).map(|i| ((i, i + 1), i + 100)));
        let size = ids.lock().len();
        assert!(size <= RelationIds::MAX_ENTRIES, "{size} entries");
        // The newest pair is always kept.
        let (known, _) = ids.split(&[(n + 9, n + 10)]);
        assert_eq!(known.get(&(n + 9, n + 10)), Some(&(n + 109)));
    }

    #[test]
    fn a_full_map_drops_expired_entries_first() {
        let ids = RelationIds::new(Duration::from_millis(50));
        let n = u32::try_from(RelationIds::MAX_ENTRIES).unwrap_or(u32::MAX);
        ids.remember((0..n - 1).map(|i| ((i, i + 1), i)));
        std::thread::sleep(Duration::from_millis(60));
        ids.remember([((n, n + 1), 1), ((n + 1, n + 2), 2)]);
        assert_eq!(ids.lock().len(), 2);
        let (known, missing) = ids.split(&[(n, n + 1), (n + 1, n + 2), (0, 1)]);
        assert_eq!(known.len(), 2);
        assert_eq!(missing, vec![(0, 1)]);
    }
}
