//! Writes a [`Plan`]: multi-row parameterised INSERTs (1,000 rows each) on two MariaDB
//! connections at once (users and 1:1 conversations on one, groups on the other) and
//! pipelined Redis commands, with a progress line per table every few seconds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use db_proxy::settings::{RedisInstance, Settings};
use dbproxy_model::keys;
use dbproxy_model::shard::{group_message_table, message_table};
use dbproxy_model::user::password_hash;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::plan::{Plan, Relation};
use crate::common::{self, Redis, Result};

const ROWS_PER_INSERT: usize = 1_000;
const REDIS_PIPELINE: usize = 2_000;
const DAY: u32 = 86_400;
/// Group sessions (type 2) and 1:1 sessions (type 1) in IMRecentSession.
const SINGLE: u8 = 1;
const GROUP: u8 = 2;

/// Rows of one table, sent `ROWS_PER_INSERT` at a time.
struct Bulk {
    table: &'static str,
    head: String,
    cols: usize,
    params: Vec<Value>,
    rows: usize,
    written: u64,
    said: Instant,
    started: Instant,
}

impl Bulk {
    fn new(table: &'static str, cols: &[&str]) -> Bulk {
        Bulk {
            table,
            head: format!("INSERT INTO {table} ({}) VALUES ", cols.join(", ")),
            cols: cols.len(),
            params: Vec::new(),
            rows: 0,
            written: 0,
            said: Instant::now(),
            started: Instant::now(),
        }
    }

    async fn push(&mut self, c: &mut Conn, row: Vec<Value>) -> Result<()> {
        debug_assert_eq!(row.len(), self.cols);
        self.params.extend(row);
        self.rows += 1;
        if self.rows == ROWS_PER_INSERT {
            self.flush(c).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, c: &mut Conn) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let one = format!("({})", vec!["?"; self.cols].join(","));
        let sql = format!("{}{}", self.head, vec![one; self.rows].join(","));
        let params = std::mem::take(&mut self.params);
        c.exec_drop(sql, params)
            .await
            .map_err(|e| format!("populate {}: {e}", self.table))?;
        self.written += self.rows as u64;
        self.rows = 0;
        if self.said.elapsed() > Duration::from_secs(5) {
            self.said = Instant::now();
            eprintln!(
                "populate: {} {} rows ({:.0} s)",
                self.table,
                self.written,
                self.started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    async fn finish(&mut self, c: &mut Conn) -> Result<()> {
        self.flush(c).await?;
        eprintln!(
            "populate: {} {} rows in {:.1} s",
            self.table,
            self.written,
            self.started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Redis commands of one instance, sent `REDIS_PIPELINE` at a time.
struct Pipe {
    conn: Redis,
    cmds: Vec<Vec<String>>,
    sent: u64,
}

impl Pipe {
    async fn open(r: &RedisInstance) -> Result<Pipe> {
        Ok(Pipe {
            conn: Redis::connect(r).await?,
            cmds: Vec::new(),
            sent: 0,
        })
    }

    async fn push(&mut self, cmd: Vec<String>) -> Result<()> {
        self.cmds.push(cmd);
        if self.cmds.len() >= REDIS_PIPELINE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let cmds = std::mem::take(&mut self.cmds);
        self.conn.pipeline(&cmds).await?;
        self.sent += cmds.len() as u64;
        Ok(())
    }
}

/// The writer of `table` among the shard writers (the model names each id's table).
fn shard_of<'a>(shards: &'a mut [Bulk], table: &str) -> Result<&'a mut Bulk> {
    shards
        .iter_mut()
        .find(|b| b.table == table)
        .ok_or_else(|| format!("populate: no writer for {table}").into())
}

/// IMRecentSession rows: (userId, peerId, type, status, created, updated).
fn sessions_bulk() -> Bulk {
    Bulk::new(
        "IMRecentSession",
        &["userId", "peerId", "type", "status", "created", "updated"],
    )
}

fn v(n: impl Into<Value>) -> Value {
    n.into()
}

/// When the population's history starts: 40 days ago.
fn epoch() -> u32 {
    dbproxy_model::unix_now().saturating_sub(40 * DAY)
}

/// First message time of relation or group `id` (spread over 20 days).
fn start_of(t0: u32, id: u32, step: u32) -> u32 {
    t0 + (id.wrapping_mul(step) % (20 * DAY))
}

/// Where a population goes: the database (as its application user) and the Redis
/// instances holding the counters and the member hashes.
pub struct Target {
    pub mysql: mysql_async::Opts,
    pub unread: RedisInstance,
    pub group_member: RedisInstance,
}

impl Target {
    pub fn of(s: &Settings) -> Target {
        Target {
            mysql: common::app_opts(&s.mysql.master).into(),
            unread: s.redis.unread.clone(),
            group_member: s.redis.group_member.clone(),
        }
    }
}

/// Writes `plan` into empty tables of `t` (schema applied) and an empty Redis.
pub async fn write(plan: &Plan, t: &Target, seed: u64) -> Result<()> {
    let t0 = epoch();
    let singles = async {
        let mut c = common::connect(t.mysql.clone()).await?;
        let mut unread = Pipe::open(&t.unread).await?;
        users(&mut c, plan, t0).await?;
        conversations(&mut c, &mut unread, plan, t0).await?;
        unread.flush().await?;
        eprintln!("populate: 1:1 Redis commands {}", unread.sent);
        Ok::<_, common::Error>(())
    };
    let groups = async {
        let mut c = common::connect(t.mysql.clone()).await?;
        let mut unread = Pipe::open(&t.unread).await?;
        let mut members = Pipe::open(&t.group_member).await?;
        let last = groups(&mut c, &mut unread, &mut members, plan, t0, seed).await?;
        // The group-session sync resumes from here: everything before is in the sessions.
        unread
            .push(vec![
                "SET".into(),
                keys::LAST_UPDATE_GROUP.into(),
                (last + 1).to_string(),
            ])
            .await?;
        unread
            .push(vec![
                "SET".into(),
                keys::TOTAL_USER_UPDATE.into(),
                t0.to_string(),
            ])
            .await?;
        unread.flush().await?;
        members.flush().await?;
        eprintln!(
            "populate: group Redis commands {}",
            unread.sent + members.sent
        );
        Ok::<_, common::Error>(())
    };
    let (a, b) = tokio::join!(singles, groups);
    a?;
    b
}

async fn users(c: &mut Conn, plan: &Plan, t0: u32) -> Result<()> {
    c.exec_drop(
        "INSERT INTO IMDepart (id, departName, priority, parentId, status, created, updated) \
         VALUES (1, ?, 0, 0, 0, ?, ?)",
        (b"population".to_vec(), t0, t0),
    )
    .await?;
    let mut b = Bulk::new(
        "IMUser",
        &[
            "id",
            "sex",
            "name",
            "domain",
            "nick",
            "password",
            "salt",
            "phone",
            "email",
            "avatar",
            "departId",
            "status",
            "created",
            "updated",
            "sign_info",
        ],
    );
    for id in 1..=plan.users {
        let name = crate::bench::user_name(id - 1);
        let salt = format!("{:04}", (u64::from(id) * 7919) % 10_000);
        let row = vec![
            v(id),
            v(1u32 + id % 2),
            v(name.clone()),
            v(name.clone()),
            v(format!("User {id}")),
            v(password_hash(crate::bench::PASSWORD, &salt)),
            v(salt),
            v(""),
            v(format!("{name}@population.invalid")),
            v(""),
            v(1u32),
            v(0u32),
            v(t0),
            v(t0),
            v(""),
        ];
        b.push(c, row).await?;
    }
    b.finish(c).await
}

/// Content of message `msg_id` of relation or group `id`.
fn text(kind: &str, id: u32, msg_id: u32) -> Vec<u8> {
    format!("population {kind} {id}: message {msg_id}, a short chat line").into_bytes()
}

async fn conversations(c: &mut Conn, unread: &mut Pipe, plan: &Plan, t0: u32) -> Result<()> {
    let mut rels = Bulk::new(
        "IMRelationShip",
        &["id", "smallId", "bigId", "status", "created", "updated"],
    );
    let mut shards: Vec<Bulk> = (0..8)
        .map(|s| {
            Bulk::new(
                message_table(s),
                &[
                    "relateId", "fromId", "toId", "msgId", "content", "type", "status", "updated",
                    "created",
                ],
            )
        })
        .collect();
    let mut sessions = sessions_bulk();
    for (i, r) in plan.relations.iter().enumerate() {
        let id = i as u32 + 1;
        let start = start_of(t0, id, 7_919);
        let last = start + r.count * 60;
        rels.push(
            c,
            vec![v(id), v(r.small), v(r.big), v(0u32), v(start), v(last)],
        )
        .await?;
        let shard = shard_of(&mut shards, message_table(id))?;
        for m in 1..=r.count {
            let from = r.sender(m);
            let to = if from == r.small { r.big } else { r.small };
            let t = start + m * 60;
            let row = vec![
                v(id),
                v(from),
                v(to),
                v(m),
                v(text("relation", id, m)),
                v(1u32),
                v(0u32),
                v(t),
                v(t),
            ];
            shard.push(c, row).await?;
        }
        for (user, peer) in [(r.small, r.big), (r.big, r.small)] {
            sessions
                .push(
                    c,
                    vec![v(user), v(peer), v(SINGLE), v(0u32), v(start), v(last)],
                )
                .await?;
        }
        relation_keys(unread, id, r).await?;
    }
    rels.finish(c).await?;
    for s in &mut shards {
        s.finish(c).await?;
    }
    sessions.finish(c).await
}

/// `msg_id_<R>` at the pair's last msgId, and the unread tail in `unread_<receiver>`.
async fn relation_keys(unread: &mut Pipe, id: u32, r: &Relation) -> Result<()> {
    unread
        .push(vec![
            "SET".into(),
            keys::single_counter_key(id),
            r.count.to_string(),
        ])
        .await?;
    if r.unread {
        unread
            .push(vec![
                "HSET".into(),
                keys::single_unread_key(r.tail_receiver()),
                r.tail_from.to_string(),
                r.tail.to_string(),
            ])
            .await?;
    }
    Ok(())
}

/// Writes every group; returns the newest `lastChated`.
async fn groups(
    c: &mut Conn,
    unread: &mut Pipe,
    members: &mut Pipe,
    plan: &Plan,
    t0: u32,
    seed: u64,
) -> Result<u32> {
    let mut groups = Bulk::new(
        "IMGroup",
        &[
            "id",
            "name",
            "avatar",
            "creator",
            "type",
            "userCnt",
            "status",
            "version",
            "lastChated",
            "updated",
            "created",
        ],
    );
    let mut rows = Bulk::new(
        "IMGroupMember",
        &["groupId", "userId", "status", "created", "updated"],
    );
    let mut shards: Vec<Bulk> = (0..8)
        .map(|s| {
            Bulk::new(
                group_message_table(s),
                &[
                    "groupId", "userId", "msgId", "content", "type", "status", "updated", "created",
                ],
            )
        })
        .collect();
    let mut sessions = sessions_bulk();
    let heavy: std::collections::HashSet<u32> = plan.heavy.iter().map(|h| h.id).collect();
    let joined = t0.saturating_sub(DAY);
    let mut newest = 0;
    for (i, g) in plan.groups.iter().enumerate() {
        let id = i as u32 + 1;
        let start = start_of(t0, id, 104_729);
        let last = start + g.count * 30;
        newest = newest.max(last);
        let creator = g.members.first().copied().unwrap_or(0);
        groups
            .push(
                c,
                vec![
                    v(id),
                    v(format!("Group {id}")),
                    v(""),
                    v(creator),
                    v(1u32),
                    v(g.members.len() as u32),
                    v(0u32),
                    v(1u32),
                    v(last),
                    v(start),
                    v(start),
                ],
            )
            .await?;
        let mut hash = vec!["HSET".to_owned(), keys::member_key(id)];
        for &u in &g.members {
            rows.push(c, vec![v(id), v(u), v(0u32), v(joined), v(joined)])
                .await?;
            sessions
                .push(c, vec![v(u), v(id), v(GROUP), v(0u32), v(joined), v(last)])
                .await?;
            hash.push(u.to_string());
            hash.push(joined.to_string());
            if hash.len() >= 1_002 {
                members
                    .push(std::mem::replace(
                        &mut hash,
                        vec!["HSET".to_owned(), keys::member_key(id)],
                    ))
                    .await?;
            }
        }
        if hash.len() > 2 {
            members.push(hash).await?;
        }
        // Messages from random members; each sender's copy is the total at its last send.
        let mut rng = StdRng::seed_from_u64(seed ^ u64::from(id).wrapping_mul(0x9e37_79b9));
        let mut copy: HashMap<u32, u32> = HashMap::new();
        let shard = shard_of(&mut shards, group_message_table(id))?;
        for m in 1..=g.count {
            let from = g.members[rng.random_range(0..g.members.len())];
            copy.insert(from, m);
            let t = start + m * 30;
            let row = vec![
                v(id),
                v(from),
                v(m),
                v(text("group", id, m)),
                v(2u32),
                v(0u32),
                v(t),
                v(t),
            ];
            shard.push(c, row).await?;
        }
        // Heavy members have read all but a few (0-3) of the newest.
        for &u in g.members.iter().filter(|u| heavy.contains(u)) {
            let seen = g.count.saturating_sub((u + id) % 4);
            let e = copy.entry(u).or_insert(0);
            *e = (*e).max(seen);
        }
        let total = g.count.to_string();
        for cmd in [
            vec!["SET".into(), keys::group_counter_key(id), total.clone()],
            vec![
                "HSET".into(),
                keys::group_total_key(id),
                keys::COUNT_FIELD.into(),
                total,
            ],
        ] {
            unread.push(cmd).await?;
        }
        for (u, n) in copy {
            unread
                .push(vec![
                    "HSET".into(),
                    keys::user_group_key(u, id),
                    keys::COUNT_FIELD.into(),
                    n.to_string(),
                ])
                .await?;
        }
    }
    groups.finish(c).await?;
    rows.finish(c).await?;
    for s in &mut shards {
        s.finish(c).await?;
    }
    sessions.finish(c).await?;
    Ok(newest)
}
