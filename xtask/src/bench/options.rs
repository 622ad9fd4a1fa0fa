//! Command-line options of `cargo xtask bench`.

use std::fmt;

use clap::ValueEnum;

/// What each request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// IMValidateReq (0x0703) for a random seeded user, password 123456.
    Login,
    /// IMMsgData (0x0301) type 1 (single text) between a random prepared pair.
    Send,
    /// IMGetMsgListReq (0x0309), 20 messages, msg_id_begin 0, of a pair holding >= 20 messages.
    Fetch,
    /// IMUnreadMsgCntReq (0x0307) for a random seeded user.
    Unread,
    /// 60% send, 30% fetch, 10% unread.
    Mix,
    /// IMRecentContactSessionReq (0x0201) from time 0 (the first 100 sessions) of a heavy
    /// user. Needs --population.
    Sessions,
    /// IMNormalGroupListReq (0x0401) of a heavy user (all its groups). Needs --population.
    GroupList,
    /// IMGroupInfoListReq (0x0403) for 20 of a heavy user's groups at version 0 (details and
    /// member lists of each). Needs --population.
    GroupInfo,
    /// IMGetMsgByIdReq (0x030D) for 20 random msgIds of a heavy user's conversation holding
    /// >= 20 messages. Needs --population.
    ByIds,
    /// IMMsgDataReadAck (0x0303, no reply) of a random conversation of a heavy user, then its
    /// IMUnreadMsgCntReq on the same connection. Needs --population; the read-acks clear
    /// unread entries as the run goes, so later runs of unread see fewer.
    ReadUnread,
    /// Login-shaped requests against an in-process trivial server that answers at once
    /// (the load generator's own ceiling).
    Ceiling,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Login => "login",
            Mode::Send => "send",
            Mode::Fetch => "fetch",
            Mode::Unread => "unread",
            Mode::Mix => "mix",
            Mode::Sessions => "sessions",
            Mode::GroupList => "group-list",
            Mode::GroupInfo => "group-info",
            Mode::ByIds => "by-ids",
            Mode::ReadUnread => "read-unread",
            Mode::Ceiling => "ceiling",
        }
    }

    /// Whether preparation must create conversations (relations, sessions, messages).
    pub fn needs_messages(self) -> bool {
        matches!(self, Mode::Send | Mode::Fetch | Mode::Unread | Mode::Mix)
    }

    /// Whether the mode reads what only a built population has (groups, long histories).
    pub fn needs_population(self) -> bool {
        matches!(
            self,
            Mode::Sessions | Mode::GroupList | Mode::GroupInfo | Mode::ByIds | Mode::ReadUnread
        )
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `cargo xtask bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Workload.
    #[arg(long, value_enum, default_value_t = Mode::Login)]
    pub mode: Mode,
    /// TCP connections to the server (with --direct: concurrent workers / depth).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub conns: u32,
    /// Requests in flight per connection (matched by seq_num).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub depth: u32,
    /// Measured seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Unmeasured seconds of load before the measured window.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,
    /// Seeded users (`bench_<i>`, password 123456).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub users: u32,
    /// Conversation partners per user: user i talks to users i+1..=i+K (mod U). Each such
    /// pair gets a first message during preparation; the fetch pair (i, i+1) gets 20.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub peers: u32,
    /// Bench an already running server at HOST:PORT instead of starting one. It must use the
    /// MariaDB database and Redis of config/db-proxy.toml (DBPROXY__ overrides apply); seeded
    /// users and messages are added there.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "direct")]
    pub addr: Option<String>,
    /// Backend limit: issue the same model calls straight against MariaDB/Redis in-process
    /// (no proxy), with conns x depth concurrent workers. Every mode but ceiling.
    #[arg(long)]
    pub direct: bool,
    /// After the result line, one line per stage of the model's coalesced paths (queue
    /// waits, batches, their backend steps): over the measured window with --direct, over
    /// the server's whole run (warm-up included, from its log at the stop) otherwise.
    #[arg(long, conflicts_with = "addr")]
    pub stages: bool,
    /// Run on the population `cargo xtask populate` built in this database (its manifest in
    /// target/population/ names the heavy users every request picks from) instead of a
    /// fresh bench database. Nothing is dropped or flushed; sends and read-acks add to it.
    #[arg(long, value_name = "DATABASE", conflicts_with = "addr")]
    pub population: Option<String>,
    /// Redis logical database of the bench (FLUSHDB'd first) when the bench owns the backends.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(0..=15))]
    pub redis_db: u8,
    /// MariaDB database the bench (re)creates when it owns the backends.
    #[arg(long, default_value = "dbproxy_bench")]
    pub database: String,
    /// Admin account URL for creating the bench database (default: root over TCP, then socket).
    #[arg(long, value_name = "URL")]
    pub admin_url: Option<String>,
    /// Start the server from a dbproxyserver.conf in the original's shipped style (ThreadNum=8,
    /// MySQL pools of 16, Redis pools of 16 and 48, which db-proxy maps to one worker and
    /// pools of 4) instead of config/db-proxy.toml: what a drop-in user who keeps the old file
    /// runs. Same database, Redis and port choice.
    #[arg(long, conflicts_with_all = ["addr", "direct"])]
    pub legacy_conf: bool,
    /// Don't run `cargo build --release -p db-proxy` before starting target/release/db-proxy.
    #[arg(long)]
    pub no_build: bool,
    /// Per-request timeout, ms (a request without a reply by then counts as an error).
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Measure with this (unoptimised) xtask build instead of re-running as
    /// `cargo run --release -p xtask -- bench ...` (the default when built without optimisation).
    #[arg(long)]
    pub allow_debug: bool,
    /// Print the result as one JSON object instead of a text line.
    #[arg(long)]
    pub json: bool,
    /// Also append the result as one JSON line to FILE (the input of `cargo xtask chart`).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<std::path::PathBuf>,
}
