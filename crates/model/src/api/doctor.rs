//! Check and repair of the damage the original's races left in a deployment
//! (docs/compatibility.md#upgrading-from-the-original): `store.doctor()`.
//!
//! [`Doctor::check`] only reads. [`Doctor::repair`] changes rows so that nothing a reader
//! could find is lost and nothing is deleted: duplicates are hidden (status 1, which the
//! original also uses for removed rows), messages readers could not find are copied where
//! they can (the originals hidden), renumbered msgIds and raised counters are reported one
//! line each, so every change can be traced and undone by hand. Run it while no db-proxy or
//! original writes (before the swap): it takes no locks the servers would wait for.

use diesel::sql_types::{BigInt, Binary, Integer, TinyInt, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::db::shard::{shard_of, GROUP_MESSAGE_TABLES, MESSAGE_TABLES};
use crate::db::DbConn;
use crate::error::{MysqlResultExt, Result};
use crate::redis::keys::{group_counter_key, member_key, single_counter_key};
use crate::Store;

/// One kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Several active IMRelationShip rows for one user pair (readers use the highest id;
    /// messages under the others are invisible).
    DuplicateRelations,
    /// Several active IMRecentSession rows for one (user, peer, type): a session listed
    /// twice.
    DuplicateSessions,
    /// Messages (1:1 or group) stored with msgId 0 or with a msgId another message of the
    /// same conversation has.
    BadMessageIds,
    /// A Redis msgId counter below the highest stored msgId of its conversation: the next
    /// sends would reuse ids.
    CountersBehind,
    /// A group with active members but no `group_member_<G>` hash in Redis.
    MissingMemberHashes,
}

impl Damage {
    /// Every kind, in the order they are checked and repaired.
    pub const ALL: [Damage; 5] = [
        Damage::DuplicateRelations,
        Damage::DuplicateSessions,
        Damage::BadMessageIds,
        Damage::CountersBehind,
        Damage::MissingMemberHashes,
    ];

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Damage::DuplicateRelations => "duplicate relations",
            Damage::DuplicateSessions => "duplicate sessions",
            Damage::BadMessageIds => "messages with msgId 0 or a duplicate msgId",
            Damage::CountersBehind => "msgId counters behind the stored messages",
            Damage::MissingMemberHashes => "groups without a member hash",
        }
    }
}

/// What a check found of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The kind.
    pub damage: Damage,
    /// How many cases (pairs, sessions, messages, counters, groups).
    pub count: usize,
    /// Up to [`EXAMPLES`] cases, readable.
    pub examples: Vec<String>,
}

/// Examples kept per finding.
pub const EXAMPLES: usize = 5;

/// Check-and-repair handle (see the module docs).
#[derive(Clone, Copy)]
pub struct Doctor<'a> {
    store: &'a Store,
}

impl Store {
    /// Check and repair of damage left by the original (reads and writes the tables and keys
    /// each [`Damage`] names, on master and Redis `unread` / `group_member`).
    pub fn doctor(&self) -> Doctor<'_> {
        Doctor { store: self }
    }
}

// Numbers are read as BIGINT UNSIGNED (`CAST(... AS UNSIGNED)`): the schema mixes signed
// ids and unsigned columns, and aggregates change types.
#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = Unsigned<BigInt>)]
    a: u64,
    #[diesel(sql_type = Unsigned<BigInt>)]
    b: u64,
    #[diesel(sql_type = Unsigned<BigInt>)]
    t: u64,
    #[diesel(sql_type = Unsigned<BigInt>)]
    n: u64,
    #[diesel(sql_type = Unsigned<BigInt>)]
    keep: u64,
    #[diesel(sql_type = Unsigned<BigInt>)]
    latest: u64,
}

#[derive(QueryableByName)]
struct Owned {
    #[diesel(sql_type = Unsigned<BigInt>)]
    owner: u64,
    #[diesel(sql_type = Unsigned<BigInt>)]
    msg_id: u64,
    #[diesel(sql_type = Unsigned<BigInt>)]
    n: u64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Unsigned<BigInt>)]
    id: u64,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Unsigned<Integer>)]
    from_id: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    to_id: u32,
    #[diesel(sql_type = Binary)]
    content: Vec<u8>,
    #[diesel(sql_type = Unsigned<TinyInt>)]
    kind: u8,
    #[diesel(sql_type = Unsigned<Integer>)]
    created: u32,
}

const DUP_RELATIONS: &str = "SELECT CAST(smallId AS UNSIGNED) AS a, \
     CAST(bigId AS UNSIGNED) AS b, CAST(0 AS UNSIGNED) AS t, CAST(COUNT(*) AS UNSIGNED) AS n, \
     CAST(MAX(id) AS UNSIGNED) AS keep, CAST(0 AS UNSIGNED) AS latest FROM IMRelationShip \
     WHERE status = 0 GROUP BY smallId, bigId HAVING COUNT(*) > 1";
const DUP_SESSIONS: &str = "SELECT CAST(userId AS UNSIGNED) AS a, CAST(peerId AS UNSIGNED) AS b, \
     CAST(type AS UNSIGNED) AS t, CAST(COUNT(*) AS UNSIGNED) AS n, \
     CAST(MAX(id) AS UNSIGNED) AS keep, CAST(MAX(updated) AS UNSIGNED) AS latest \
     FROM IMRecentSession WHERE status = 0 GROUP BY userId, peerId, type HAVING COUNT(*) > 1";

/// A conversation's sharded table: 1:1 (`IMMessage_*`, owner = relateId) or group
/// (`IMGroupMessage_*`, owner = groupId).
#[derive(Clone, Copy)]
enum Conversation {
    Single,
    Group,
}

impl Conversation {
    fn table(self, shard: usize) -> &'static str {
        match self {
            Conversation::Single => MESSAGE_TABLES[shard],
            Conversation::Group => GROUP_MESSAGE_TABLES[shard],
        }
    }
    fn owner(self) -> &'static str {
        match self {
            Conversation::Single => "relateId",
            Conversation::Group => "groupId",
        }
    }
    fn counter(self, owner: u32) -> String {
        match self {
            Conversation::Single => single_counter_key(owner),
            Conversation::Group => group_counter_key(owner),
        }
    }
    fn label(self) -> &'static str {
        match self {
            Conversation::Single => "relation",
            Conversation::Group => "group",
        }
    }
}

impl Doctor<'_> {
    /// Every kind of damage with its count and examples; reads only.
    pub async fn check(&self) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        for damage in Damage::ALL {
            let cases = self.cases(damage).await?;
            out.push(Finding {
                damage,
                count: cases.len(),
                examples: cases.into_iter().take(EXAMPLES).collect(),
            });
        }
        Ok(out)
    }

    /// Repairs every kind (see the module docs); returns one line per change, also logged.
    pub async fn repair(&self) -> Result<Vec<String>> {
        let mut log = Vec::new();
        self.merge_relations(&mut log).await?;
        self.merge_sessions(&mut log).await?;
        for kind in [Conversation::Single, Conversation::Group] {
            self.renumber(kind, &mut log).await?;
        }
        for kind in [Conversation::Single, Conversation::Group] {
            self.raise_counters(kind, &mut log).await?;
        }
        self.rebuild_member_hashes(&mut log).await?;
        for line in &log {
            tracing::info!(change = %line, "doctor");
        }
        Ok(log)
    }

    async fn cases(&self, damage: Damage) -> Result<Vec<String>> {
        Ok(match damage {
            Damage::DuplicateRelations => self
                .pairs(DUP_RELATIONS)
                .await?
                .iter()
                .map(|p| {
                    format!(
                        "users {} and {}: {} relations, readers use {}",
                        p.a, p.b, p.n, p.keep
                    )
                })
                .collect(),
            Damage::DuplicateSessions => self
                .pairs(DUP_SESSIONS)
                .await?
                .iter()
                .map(|p| format!("user {} peer {} type {}: {} sessions", p.a, p.b, p.t, p.n))
                .collect(),
            Damage::BadMessageIds => {
                let mut all = Vec::new();
                for kind in [Conversation::Single, Conversation::Group] {
                    for (shard, o) in self.bad_ids(kind).await? {
                        all.push(format!(
                            "{} {} in {}: msgId {} on {} messages",
                            kind.label(),
                            o.owner,
                            kind.table(shard),
                            o.msg_id,
                            o.n
                        ));
                    }
                }
                all
            }
            Damage::CountersBehind => {
                let mut all = Vec::new();
                for kind in [Conversation::Single, Conversation::Group] {
                    for (owner, counter, top) in self.counters_behind(kind).await? {
                        all.push(format!(
                            "{} {}: counter {} at {counter}, highest stored msgId {top}",
                            kind.label(),
                            owner,
                            kind.counter(owner)
                        ));
                    }
                }
                all
            }
            Damage::MissingMemberHashes => self
                .groups_without_hash()
                .await?
                .iter()
                .map(|g| format!("group {g}: {} missing", member_key(*g)))
                .collect(),
        })
    }

    async fn pairs(&self, sql: &'static str) -> Result<Vec<Pair>> {
        self.store
            .master(async |c| {
                diesel::sql_query(sql)
                    .load(c)
                    .await
                    .ctx("doctor: duplicates")
            })
            .await
    }

    /// Each duplicated pair: the relation readers use (highest id) takes over the messages
    /// of the others, appended after its own msgIds in their time order; the originals and
    /// the other relations get status 1.
    async fn merge_relations(&self, log: &mut Vec<String>) -> Result<()> {
        for p in self.pairs(DUP_RELATIONS).await? {
            let (a, b, keep) = (n32(p.a), n32(p.b), n32(p.keep));
            let moved = self
                .store
                .master_tx(async |c| {
                    let others: Vec<Id> = diesel::sql_query(
                        "SELECT CAST(id AS UNSIGNED) AS id FROM IMRelationShip WHERE smallId = ? \
                         AND bigId = ? AND status = 0 AND id <> ? ORDER BY id",
                    )
                    .bind::<Unsigned<Integer>, _>(a)
                    .bind::<Unsigned<Integer>, _>(b)
                    .bind::<Unsigned<Integer>, _>(keep)
                    .load(c)
                    .await
                    .ctx("doctor: other relations")?;
                    let mut lines = Vec::new();
                    let mut next = max_msg_id(c, Conversation::Single, keep).await?;
                    for old in others {
                        let old_id = n32(old.id);
                        let from = MESSAGE_TABLES[shard_of(old_id)];
                        let rows: Vec<Row> = diesel::sql_query(format!(
                            "SELECT fromId AS from_id, toId AS to_id, content, type AS kind, \
                             created FROM {from} WHERE relateId = ? AND status = 0 \
                             ORDER BY created, id"
                        ))
                        .bind::<Unsigned<Integer>, _>(old_id)
                        .load(c)
                        .await
                        .ctx("doctor: messages of a duplicate relation")?;
                        let to = MESSAGE_TABLES[shard_of(keep)];
                        for r in &rows {
                            next = next_id(next)?;
                            diesel::sql_query(format!(
                                "INSERT INTO {to} (relateId, fromId, toId, msgId, content, \
                                 status, type, created, updated) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)"
                            ))
                            .bind::<Unsigned<Integer>, _>(keep)
                            .bind::<Unsigned<Integer>, _>(r.from_id)
                            .bind::<Unsigned<Integer>, _>(r.to_id)
                            .bind::<Unsigned<Integer>, _>(next)
                            .bind::<Binary, _>(r.content.as_slice())
                            .bind::<Unsigned<TinyInt>, _>(r.kind)
                            .bind::<Unsigned<Integer>, _>(r.created)
                            .bind::<Unsigned<Integer>, _>(r.created)
                            .execute(c)
                            .await
                            .ctx("doctor: copy a message")?;
                        }
                        diesel::sql_query(format!(
                            "UPDATE {from} SET status = 1 WHERE relateId = ? AND status = 0"
                        ))
                        .bind::<Unsigned<Integer>, _>(old_id)
                        .execute(c)
                        .await
                        .ctx("doctor: hide the copied messages")?;
                        diesel::sql_query("UPDATE IMRelationShip SET status = 1 WHERE id = ?")
                            .bind::<Unsigned<Integer>, _>(old_id)
                            .execute(c)
                            .await
                            .ctx("doctor: hide a duplicate relation")?;
                        lines.push(format!(
                            "relation {} (users {a} and {b}) set to status 1; its {} messages \
                             copied into relation {keep} as msgIds {}..={next} and set to status 1 in {from}",
                            old_id,
                            rows.len(),
                            (next + 1).saturating_sub(rows.len() as u32),
                        ));
                    }
                    Ok((lines, next))
                })
                .await?;
            let (lines, top) = moved;
            log.extend(lines);
            self.raise_counter(Conversation::Single, keep, top, log)
                .await?;
        }
        Ok(())
    }

    /// Each duplicated session: the one readers use (highest id) keeps the latest time,
    /// the others get status 1.
    async fn merge_sessions(&self, log: &mut Vec<String>) -> Result<()> {
        for p in self.pairs(DUP_SESSIONS).await? {
            let (user, peer, kind) = (n32(p.a), n32(p.b), u8::try_from(p.t).unwrap_or(u8::MAX));
            let (keep, latest) = (n32(p.keep), n32(p.latest));
            let hidden = self
                .store
                .master_tx(async |c| {
                    let hidden = diesel::sql_query(
                        "UPDATE IMRecentSession SET status = 1 WHERE userId = ? AND peerId = ? \
                         AND type = ? AND status = 0 AND id <> ?",
                    )
                    .bind::<Unsigned<Integer>, _>(user)
                    .bind::<Unsigned<Integer>, _>(peer)
                    .bind::<Unsigned<TinyInt>, _>(kind)
                    .bind::<Unsigned<Integer>, _>(keep)
                    .execute(c)
                    .await
                    .ctx("doctor: hide duplicate sessions")?;
                    diesel::sql_query(
                        "UPDATE IMRecentSession SET updated = GREATEST(updated, ?) WHERE id = ?",
                    )
                    .bind::<Unsigned<Integer>, _>(latest)
                    .bind::<Unsigned<Integer>, _>(keep)
                    .execute(c)
                    .await
                    .ctx("doctor: latest time on the kept session")?;
                    Ok(hidden)
                })
                .await?;
            log.push(format!(
                "user {} peer {} type {}: {hidden} duplicate sessions set to status 1, session {} kept (updated >= {})",
                p.a, p.b, p.t, p.keep, p.latest
            ));
        }
        Ok(())
    }

    /// (shard, case) of every msgId 0 or duplicated msgId among visible messages.
    async fn bad_ids(&self, kind: Conversation) -> Result<Vec<(usize, Owned)>> {
        let mut out = Vec::new();
        for shard in 0..8 {
            let sql = format!(
                "SELECT CAST({o} AS UNSIGNED) AS owner, CAST(msgId AS UNSIGNED) AS msg_id, \
                 CAST(COUNT(*) AS UNSIGNED) AS n FROM {t} WHERE status = 0 \
                 GROUP BY {o}, msgId HAVING COUNT(*) > 1 OR msgId = 0",
                o = kind.owner(),
                t = kind.table(shard)
            );
            let found: Vec<Owned> = self
                .store
                .master(async |c| diesel::sql_query(&sql).load(c).await.ctx("doctor: msgIds"))
                .await?;
            out.extend(found.into_iter().map(|o| (shard, o)));
        }
        Ok(out)
    }

    /// Messages with msgId 0, and all but the first (lowest row id) of a duplicated msgId,
    /// get new msgIds after the conversation's highest, in row order.
    async fn renumber(&self, kind: Conversation, log: &mut Vec<String>) -> Result<()> {
        for (shard, case) in self.bad_ids(kind).await? {
            let table = kind.table(shard);
            let (owner, msg_id) = (n32(case.owner), n32(case.msg_id));
            let (lines, top) = self
                .store
                .master_tx(async |c| {
                    let ids: Vec<Id> = diesel::sql_query(format!(
                        "SELECT CAST(id AS UNSIGNED) AS id FROM {table} WHERE {o} = ? AND msgId = ? \
                         AND status = 0 ORDER BY id",
                        o = kind.owner()
                    ))
                    .bind::<Unsigned<Integer>, _>(owner)
                    .bind::<Unsigned<Integer>, _>(msg_id)
                    .load(c)
                    .await
                    .ctx("doctor: rows of a msgId")?;
                    let skip = usize::from(msg_id != 0);
                    let mut next = max_msg_id(c, kind, owner).await?;
                    let mut lines = Vec::new();
                    for row in ids.iter().skip(skip) {
                        next = next_id(next)?;
                        diesel::sql_query(format!("UPDATE {table} SET msgId = ? WHERE id = ?"))
                            .bind::<Unsigned<Integer>, _>(next)
                            .bind::<Unsigned<BigInt>, _>(row.id)
                            .execute(c)
                            .await
                            .ctx("doctor: renumber a message")?;
                        lines.push(format!(
                            "{table} row {}: {} {owner} msgId {} -> {next}",
                            row.id,
                            kind.label(),
                            msg_id
                        ));
                    }
                    Ok((lines, next))
                })
                .await?;
            log.extend(lines);
            self.raise_counter(kind, owner, top, log).await?;
        }
        Ok(())
    }

    /// (owner, counter, highest msgId) of every counter below its conversation's highest
    /// stored msgId (a missing counter is not damage: it is seeded from MySQL on first use).
    async fn counters_behind(&self, kind: Conversation) -> Result<Vec<(u32, u64, u32)>> {
        let mut out = Vec::new();
        for shard in 0..8 {
            let sql = format!(
                "SELECT CAST({o} AS UNSIGNED) AS owner, CAST(MAX(msgId) AS UNSIGNED) AS msg_id, \
                 CAST(COUNT(*) AS UNSIGNED) AS n FROM {t} GROUP BY {o}",
                o = kind.owner(),
                t = kind.table(shard)
            );
            let tops: Vec<Owned> = self
                .store
                .master(async |c| {
                    diesel::sql_query(&sql)
                        .load(c)
                        .await
                        .ctx("doctor: highest msgIds")
                })
                .await?;
            for t in tops {
                let (owner, top) = (n32(t.owner), n32(t.msg_id));
                let counter = self.store.unread().get(&kind.counter(owner)).await?;
                if let Some(v) = counter.and_then(|v| v.parse::<u64>().ok()) {
                    if v < u64::from(top) {
                        out.push((owner, v, top));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn raise_counters(&self, kind: Conversation, log: &mut Vec<String>) -> Result<()> {
        for (owner, _, top) in self.counters_behind(kind).await? {
            self.raise_counter(kind, owner, top, log).await?;
        }
        Ok(())
    }

    /// Sets the counter of `owner` to `top` when it exists and is lower.
    async fn raise_counter(
        &self,
        kind: Conversation,
        owner: u32,
        top: u32,
        log: &mut Vec<String>,
    ) -> Result<()> {
        let key = kind.counter(owner);
        let cache = self.store.unread();
        let Some(v) = cache.get(&key).await?.and_then(|v| v.parse::<u64>().ok()) else {
            return Ok(());
        };
        if v < u64::from(top) {
            cache.set(&key, &top.to_string()).await?;
            log.push(format!("{key}: {v} -> {top}"));
        }
        Ok(())
    }

    async fn groups_without_hash(&self) -> Result<Vec<u32>> {
        let groups: Vec<Id> = self
            .store
            .master(async |c| {
                diesel::sql_query(
                    "SELECT DISTINCT CAST(groupId AS UNSIGNED) AS id FROM IMGroupMember \
                     WHERE status = 0 ORDER BY id",
                )
                .load(c)
                .await
                .ctx("doctor: groups with members")
            })
            .await?;
        let mut out = Vec::new();
        for g in groups {
            let g = n32(g.id);
            if !self.store.group_member().exists(&member_key(g)).await? {
                out.push(g);
            }
        }
        Ok(out)
    }

    async fn rebuild_member_hashes(&self, log: &mut Vec<String>) -> Result<()> {
        for g in self.groups_without_hash().await? {
            if self.store.groups().ensure_member_hash(g).await? {
                log.push(format!(
                    "group {g}: {} rebuilt from IMGroupMember",
                    member_key(g)
                ));
            }
        }
        Ok(())
    }
}

/// The msgId after `id`, refused when the column would overflow (it would wrap to 0).
fn next_id(id: u32) -> Result<u32> {
    id.checked_add(1)
        .ok_or_else(|| crate::Error::Invalid("doctor: msgIds of a conversation exhausted".into()))
}

/// An id read as BIGINT UNSIGNED; ids of this schema fit in 32 bits.
fn n32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Highest msgId stored for `owner` (any status), 0 when none.
async fn max_msg_id(c: &mut DbConn, kind: Conversation, owner: u32) -> Result<u32> {
    #[derive(QueryableByName)]
    struct Top {
        #[diesel(sql_type = diesel::sql_types::Nullable<Unsigned<Integer>>)]
        top: Option<u32>,
    }
    let t: Top = diesel::sql_query(format!(
        "SELECT MAX(msgId) AS top FROM {} WHERE {} = ?",
        kind.table(shard_of(owner)),
        kind.owner()
    ))
    .bind::<Unsigned<Integer>, _>(owner)
    .get_result(c)
    .await
    .ctx("doctor: highest msgId")?;
    Ok(t.top.unwrap_or(0))
}
