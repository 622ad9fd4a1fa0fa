//! `cargo xtask populate`: a production-sized population (issue 17) in a database and Redis db
//! of its own, written through bulk statements, consistent as db-proxy itself would have
//! left it (msgIds 1..N per relation and group, counters at MAX(msgId), sessions on both
//! sides and for every group member, member hashes, unread counters matching the unread
//! tails). `plan` draws the data, `write` stores it; a manifest next to the build
//! (target/population/<database>.json) tells `cargo xtask bench --population` which users
//! carry the load.

mod plan;
mod write;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::common::{self, Result};
pub use plan::Plan;

/// Preset sizes: `small` is the shape of the earlier benchmarks (a few sessions per user),
/// `large` the grown deployment of issue 17.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    Small,
    Large,
}

/// How big the population is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    pub users: u32,
    pub relations: u32,
    pub messages: u64,
    pub groups: u32,
    pub min_members: u32,
    pub max_members: u32,
    pub group_messages: u64,
    /// Users under load (ids 1..=heavy), each with the sessions, groups and unread below.
    pub heavy: u32,
    /// Recent sessions of each heavy user: its groups plus single sessions for the rest.
    pub heavy_sessions: u32,
    pub heavy_groups: u32,
    /// Single peers whose last messages each heavy user has not read.
    pub heavy_unread: u32,
}

impl Sizes {
    pub fn preset(scale: Scale) -> Sizes {
        match scale {
            Scale::Small => Sizes {
                users: 2_000,
                relations: 2_000,
                messages: 20_000,
                groups: 200,
                min_members: 3,
                max_members: 12,
                group_messages: 20_000,
                heavy: 40,
                heavy_sessions: 25,
                heavy_groups: 20,
                heavy_unread: 5,
            },
            Scale::Large => Sizes {
                users: 100_000,
                relations: 100_000,
                messages: 1_000_000,
                groups: 10_000,
                min_members: 3,
                max_members: 500,
                group_messages: 1_000_000,
                heavy: 40,
                heavy_sessions: 2_000,
                heavy_groups: 200,
                heavy_unread: 500,
            },
        }
    }

    /// Whether the sizes can hold what they promise.
    pub fn check(&self) -> Result<(), String> {
        let singles = self.heavy_sessions.checked_sub(self.heavy_groups).ok_or(
            "--heavy-groups must not exceed --heavy-sessions (group sessions are sessions)",
        )?;
        let need = u64::from(self.heavy) * u64::from(singles);
        if u64::from(self.relations) < need {
            return Err(format!(
                "{} heavy users x {singles} single sessions need {need} relations, --relations is {}",
                self.heavy, self.relations
            ));
        }
        if self.users <= self.heavy + singles {
            return Err(format!(
                "--users {} is too few for {} heavy users with {singles} peers each",
                self.users, self.heavy
            ));
        }
        if self.heavy_unread > singles {
            return Err(format!(
                "--heavy-unread {} exceeds the {singles} single sessions of a heavy user",
                self.heavy_unread
            ));
        }
        if self.heavy_groups > self.groups {
            return Err("--heavy-groups exceeds --groups".into());
        }
        if self.min_members < 1
            || self.min_members > self.max_members
            || self.max_members > self.users
        {
            return Err(
                "members per group: need 1 <= --min-members <= --max-members <= --users".into(),
            );
        }
        if self.messages < u64::from(self.relations) || self.group_messages < u64::from(self.groups)
        {
            return Err("every relation and group gets at least one message: raise --messages / --group-messages".into());
        }
        Ok(())
    }
}

/// `cargo xtask populate` options: a preset, each size overridable.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value_t = Scale::Large)]
    pub scale: Scale,
    /// MariaDB database (dropped and re-created); default `dbproxy_pop_<scale>`.
    #[arg(long)]
    pub database: Option<String>,
    /// Redis logical db (flushed); default 13 for small, 14 for large.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=15))]
    pub redis_db: Option<u8>,
    #[arg(long)]
    pub users: Option<u32>,
    #[arg(long)]
    pub relations: Option<u32>,
    /// 1:1 messages over all relations.
    #[arg(long)]
    pub messages: Option<u64>,
    #[arg(long)]
    pub groups: Option<u32>,
    #[arg(long)]
    pub min_members: Option<u32>,
    #[arg(long)]
    pub max_members: Option<u32>,
    #[arg(long)]
    pub group_messages: Option<u64>,
    /// Users under load.
    #[arg(long)]
    pub heavy: Option<u32>,
    #[arg(long)]
    pub heavy_sessions: Option<u32>,
    #[arg(long)]
    pub heavy_groups: Option<u32>,
    #[arg(long)]
    pub heavy_unread: Option<u32>,
    /// Also apply sql/optional/read_indexes.sql (the optional read indexes) after writing.
    #[arg(long)]
    pub optional_indexes: bool,
    /// Generator seed (same sizes and seed give the same data).
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Admin account URL for creating the database (default: root over TCP, then socket).
    #[arg(long, value_name = "URL")]
    pub admin_url: Option<String>,
}

impl Args {
    pub fn sizes(&self) -> Sizes {
        let mut s = Sizes::preset(self.scale);
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { s.$f = v; } )* };
        }
        take!(
            users,
            relations,
            messages,
            groups,
            min_members,
            max_members,
            group_messages,
            heavy,
            heavy_sessions,
            heavy_groups,
            heavy_unread
        );
        s
    }

    pub fn database(&self) -> String {
        self.database.clone().unwrap_or_else(|| match self.scale {
            Scale::Small => "dbproxy_pop_small".into(),
            Scale::Large => "dbproxy_pop_large".into(),
        })
    }

    pub fn redis_db(&self) -> u8 {
        self.redis_db.unwrap_or(match self.scale {
            Scale::Small => 13,
            Scale::Large => 14,
        })
    }
}

/// One heavy user as the bench needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeavyUser {
    pub id: u32,
    pub name: String,
    /// `(peer, messages of the pair)` of each single session.
    pub peers: Vec<(u32, u32)>,
    pub groups: Vec<u32>,
}

/// What `populate` leaves for `bench --population`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub database: String,
    pub redis_db: u8,
    pub seed: u64,
    pub sizes: Sizes,
    pub heavy: Vec<HeavyUser>,
}

/// Where the manifest of `database` lives.
pub fn manifest_path(database: &str) -> PathBuf {
    common::root()
        .join("target/population")
        .join(format!("{database}.json"))
}

impl Manifest {
    pub fn of(plan: &Plan, database: &str, redis_db: u8, seed: u64, sizes: Sizes) -> Manifest {
        let heavy = plan
            .heavy
            .iter()
            .map(|h| HeavyUser {
                id: h.id,
                name: crate::bench::user_name(h.id - 1),
                peers: h
                    .relations
                    .iter()
                    .map(|&r| {
                        let rel = &plan.relations[r as usize - 1];
                        let peer = if rel.small == h.id {
                            rel.big
                        } else {
                            rel.small
                        };
                        (peer, rel.count)
                    })
                    .collect(),
                groups: h.groups.clone(),
            })
            .collect();
        Manifest {
            database: database.to_owned(),
            redis_db,
            seed,
            sizes,
            heavy,
        }
    }

    pub fn load(database: &str) -> Result<Manifest> {
        let path = manifest_path(database);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e}; build the population first with `cargo xtask populate --database {database}`",
                path.display()
            )
        })?;
        Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
    }
}

pub async fn run(args: &Args) -> Result<ExitCode> {
    let sizes = args.sizes();
    let database = args.database();
    let started = Instant::now();
    let plan = Plan::draw(&sizes, args.seed)?;
    eprintln!(
        "populate: drew {} users, {} relations, {} groups ({} memberships) in {:.1} s",
        plan.users,
        plan.relations.len(),
        plan.groups.len(),
        plan.groups.iter().map(|g| g.members.len()).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    build(
        &plan,
        &database,
        args.redis_db(),
        args.admin_url.as_deref(),
        args.seed,
    )
    .await?;
    if args.optional_indexes {
        optional_indexes(&database).await?;
    }
    let manifest = Manifest::of(&plan, &database, args.redis_db(), args.seed, sizes);
    let path = manifest_path(&database);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string(&manifest)?)?;
    eprintln!(
        "populate: done in {:.1} s; manifest {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// sql/optional/read_indexes.sql, statement by statement, as the application user.
async fn optional_indexes(database: &str) -> Result<()> {
    use mysql_async::prelude::Queryable;
    let mut m = common::settings()?.mysql.master;
    m.database = database.to_owned();
    let mut c = common::app_conn(&m).await?;
    let path = common::root().join("sql/optional/read_indexes.sql");
    let text = std::fs::read_to_string(&path)?;
    for sql in text.split(";\n").map(str::trim).filter(|s| {
        s.lines()
            .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
    }) {
        let started = Instant::now();
        c.query_drop(sql)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!(
            "populate: optional index applied in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Re-creates `database` and Redis db `redis_db` and writes `plan` into them.
pub async fn build(
    plan: &Plan,
    database: &str,
    redis_db: u8,
    admin_url: Option<&str>,
    seed: u64,
) -> Result<()> {
    let b = crate::bench::fresh_backends(database, redis_db, admin_url, "populate").await?;
    drop(b.store);
    write::write(plan, &write::Target::of(&b.settings), seed).await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::write::{write, Target};
    use super::*;
    use db_proxy::settings::RedisInstance;
    use dbproxy_testkit::TestEnv;

    /// A population of `sizes` written into `env`'s database and private Redis; the manifest
    /// the bench would load.
    pub(crate) async fn populate_env(env: &TestEnv, sizes: Sizes, seed: u64) -> (Plan, Manifest) {
        let plan = Plan::draw(&sizes, seed).expect("plan");
        let opts = mysql_async::Opts::from_url(env.admin_url()).expect("admin url");
        let r = &env.config.unread;
        let redis = RedisInstance {
            host: r.host.clone(),
            port: r.port,
            db: r.db,
            max_connections: 1,
            ..RedisInstance::default()
        };
        let target = Target {
            mysql: mysql_async::OptsBuilder::from_opts(opts)
                .db_name(Some(env.db_name.clone()))
                .into(),
            unread: redis.clone(),
            group_member: redis,
        };
        write(&plan, &target, seed).await.expect("write");
        let manifest = Manifest::of(&plan, &env.db_name, r.db, seed, sizes);
        (plan, manifest)
    }

    /// A small population written into a test database and a private Redis reads back as
    /// db-proxy would have left it: the doctor finds no damage, counters continue at the
    /// stored msgIds, unread counters are the drawn tails, sessions and members are there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_population_is_consistent() {
        let env = TestEnv::new().await;
        let sizes = Sizes {
            users: 200,
            relations: 250,
            messages: 2_500,
            groups: 12,
            min_members: 3,
            max_members: 30,
            group_messages: 600,
            heavy: 3,
            heavy_sessions: 25,
            heavy_groups: 5,
            heavy_unread: 8,
        };
        let (plan, _) = populate_env(&env, sizes, 5).await;
        let store = &env.store;

        let findings = store.doctor().check().await.expect("doctor");
        assert!(findings.iter().all(|f| f.count == 0), "{findings:?}");
        let count = async |sql: &str| env.query_i64s(sql).await[0];
        assert_eq!(count("SELECT COUNT(*) AS n FROM IMUser").await, 200);
        assert_eq!(count("SELECT COUNT(*) AS n FROM IMRelationShip").await, 250);
        let members: usize = plan.groups.iter().map(|g| g.members.len()).sum();
        assert_eq!(
            count("SELECT COUNT(*) AS n FROM IMRecentSession").await,
            500 + members as i64,
            "both sides of every pair, every member of every group"
        );
        assert_eq!(
            count("SELECT COUNT(*) AS n FROM IMGroupMember").await,
            members as i64
        );
        let mut stored = 0;
        for s in 0..8 {
            stored += env
                .query_i64s(&format!("SELECT COUNT(*) AS n FROM IMMessage_{s}"))
                .await[0];
        }
        assert_eq!(stored, 2_500);

        // The next msgId of a pair and of a group follows its stored history.
        let r = &plan.relations[41];
        assert_eq!(
            store.messages().allocate_single(42).await.expect("next id"),
            r.count + 1
        );
        let g = &plan.groups[3];
        assert_eq!(
            store.messages().allocate_group(4).await.expect("next id"),
            g.count + 1
        );
        // Heavy user 1: its unread single counters are the tails it has not read.
        let h = &plan.heavy[0];
        let counts = store.counters().single_counts(h.id).await.expect("unread");
        let mut want: Vec<(u32, u32)> = h
            .relations
            .iter()
            .map(|&r| &plan.relations[r as usize - 1])
            .filter(|r| r.unread && r.tail_receiver() == h.id)
            .map(|r| (r.tail_from, r.tail))
            .collect();
        want.sort_by_key(|&(p, _)| p.to_string());
        assert_eq!(counts, want);
        let sessions = store.sessions().recent(h.id, 0).await.expect("sessions");
        assert_eq!(sessions.len(), 25);
        let mut groups = store
            .groups()
            .group_ids_of_user(h.id)
            .await
            .expect("groups");
        groups.sort_unstable();
        let mut planned = h.groups.clone();
        planned.sort_unstable();
        assert_eq!(groups, planned);
        let mut hash = store.groups().members(g_id(3)).await.expect("members");
        hash.sort_unstable();
        let mut planned = plan.groups[3].members.clone();
        planned.sort_unstable();
        assert_eq!(hash, planned);
        let newest = store
            .messages()
            .newest_group(4)
            .await
            .expect("newest")
            .expect("a message");
        assert_eq!(newest.msg_id, g.count);
        env.cleanup().await;
    }

    fn g_id(index: usize) -> u32 {
        index as u32 + 1
    }
}
