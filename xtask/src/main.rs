//! Developer tasks: `cargo xtask db-setup | seed | serve | test | chaos | demo | populate | bench | chart`.
//! One module per subcommand; shared helpers in `common`.

mod bench;
mod chart;
mod common;
mod db_setup;
mod demo;
mod populate;
mod seed;
mod serve;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "db-proxy developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create the database and user of config/db-proxy.toml (as a MariaDB admin) and the schema.
    DbSetup(db_setup::Args),
    /// Load demo data (departments, users, one group) unless IMUser already has rows.
    Seed,
    /// Check MariaDB/Redis, db-setup, seed when empty, then run db-proxy (release build).
    Serve(db_setup::Args),
    /// Prepare a test admin account, then run tests, clippy -D warnings and fmt --check.
    Test,
    /// The chaos suite's long variants (more peers, longer outages), one test at a time.
    Chaos,
    /// Start db-proxy in-process and show a login, a message, a list and unread counts.
    Demo(db_setup::Args),
    /// A production-sized population (users, conversations, groups, counters) for the bench.
    Populate(populate::Args),
    /// Pipelined load generator (issue 5): starts db-proxy on a fresh bench database unless --addr.
    Bench(bench::Args),
    /// SVG charts (req/s and p99 per mode and configuration) from `bench --json-out` files.
    Chart(chart::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.cmd {
            Cmd::DbSetup(a) => db_setup::run(&a).await,
            Cmd::Seed => seed::run().await,
            Cmd::Serve(a) => serve::run(&a).await,
            Cmd::Test => test::run().await,
            Cmd::Chaos => test::chaos().await,
            Cmd::Demo(a) => demo::run(&a).await,
            Cmd::Populate(a) => populate::run(&a).await,
            Cmd::Bench(a) => bench::run(&a).await,
            Cmd::Chart(a) => chart::run(&a),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
