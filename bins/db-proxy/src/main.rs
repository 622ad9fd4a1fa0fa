//! `db-proxy` binary: CLI, config loading, runtime construction. Everything else is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use db_proxy::settings;

/// TeamTalk db_proxy_server replacement (MySQL/Redis access for msg_server).
#[derive(Debug, Parser)]
#[command(name = "db-proxy", disable_version_flag = true)]
struct Cli {
    /// Config file: `.toml`, or `.conf` for the original dbproxyserver.conf format.
    /// Default: ./dbproxyserver.conf if it exists, else built-in defaults.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Validate FILE, print the effective settings (secrets masked) and exit.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,

    /// Print the documented default configuration (TOML, every key with its comment) and
    /// exit; redirect it to a file to start a configuration of your own.
    #[arg(long)]
    print_default_config: bool,

    /// Check the configured database and Redis for damage the original left (duplicate
    /// relations and sessions, bad msgIds, counters behind, missing member hashes), print
    /// counts and examples, change nothing. Exit 0 when clean, 1 when damage is found.
    #[arg(long)]
    doctor: bool,

    /// With --doctor: repair what it found, printing every change, then check again.
    #[arg(long, requires = "doctor")]
    repair: bool,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    version: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("{}", db_proxy::version_line());
        return ExitCode::SUCCESS;
    }
    if cli.print_default_config {
        print!("{}", db_proxy::DEFAULT_CONFIG_TOML);
        return ExitCode::SUCCESS;
    }
    if let Some(file) = cli.check_config {
        return match settings::load(Some(&file)) {
            Ok(loaded) => {
                println!("# config OK: {} ({})", file.display(), loaded.kind);
                print!("{}", loaded.settings.to_masked_toml());
                if loaded.kind == settings::SourceKind::Legacy {
                    println!("# keys of the original format, and the setting each one set:");
                    for path in db_proxy::legacy::mapped_paths() {
                        if let Some(key) = db_proxy::legacy::legacy_key(&path) {
                            match db_proxy::legacy::mapping_note(&path) {
                                Some(note) => println!("#   {key} -> {path} ({note})"),
                                None => println!("#   {key} -> {path}"),
                            }
                        }
                    }
                }
                println!(
                    "# the `sync` Redis instance (redis.sync, the sync_* keys) is accepted and \
                     ignored, as the original never used it (Q-R07)"
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("db-proxy: {e}");
                ExitCode::from(2)
            }
        };
    }
    let loaded = match settings::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("db-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    db_proxy::logging::init(&loaded.settings.log);
    if cli.doctor {
        return match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(db_proxy::doctor::run(&loaded, cli.repair)),
            Err(e) => {
                eprintln!("db-proxy: cannot start the tokio runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let threads = loaded.settings.server.threads;
    // One thread: the current-thread runtime, which polls the sockets and runs every task on
    // this thread, with no cross-thread wake-ups (less CPU per request than one worker of the
    // multi-thread runtime, BENCHMARKS.md "Session 7").
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().thread_name("db-proxy-worker").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("db-proxy: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(db_proxy::app::run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("db-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
