//! `cargo xtask serve`: check backends, db-setup, seed when empty, run db-proxy (release).

use std::process::{Command, ExitCode};

use crate::common::{self, Result, START_MARIADB, START_REDIS};
use crate::{db_setup, seed};

pub async fn run(args: &db_setup::Args) -> Result<ExitCode> {
    let s = common::settings()?;
    if let Err(e) = common::tcp_reachable(&s.mysql.master.addr()).await {
        return Err(format!(
            "cannot reach MariaDB at {} ({e}): start it with `{START_MARIADB}`",
            s.mysql.master.addr()
        )
        .into());
    }
    for (name, r) in s.redis.required() {
        if let Err(e) = common::tcp_reachable(&r.addr()).await {
            return Err(format!(
                "cannot reach Redis ({name}) at {} ({e}): start it with `{START_REDIS}`",
                r.addr()
            )
            .into());
        }
    }
    db_setup::setup(args.admin_url.as_deref()).await?;
    seed::seed().await?;

    let config = common::config_path();
    println!(
        "serve: starting db-proxy on {:?} port {} (Ctrl-C stops it gracefully)",
        s.server.listen, s.server.port
    );
    // Ctrl-C reaches db-proxy too (same process group); xtask just waits for it to finish.
    let _ctrl_c = tokio::spawn(async {
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                break;
            }
        }
    });
    let status = tokio::task::spawn_blocking(move || {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(common::root())
            .args(["run", "-p", "db-proxy", "--release", "--", "--config"])
            .arg(&config)
            .status()
    })
    .await??;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
    })
}
