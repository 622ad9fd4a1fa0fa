//! `cargo xtask test`: make sure tests have a MariaDB admin account, then run the workspace
//! tests, clippy (-D warnings) and rustfmt --check.

use std::process::{Command, ExitCode};

use mysql_async::prelude::Queryable;

use crate::common::{self, Result, MYSQL_SOCKET, START_MARIADB, START_REDIS};

const TEST_USER: &str = "dbproxy_test";

/// Finds (or creates) an admin URL the test kit can use over TCP.
async fn test_admin_url() -> Result<String> {
    if let Ok(url) = std::env::var("DBPROXY_TEST_MYSQL_URL") {
        println!("test: using DBPROXY_TEST_MYSQL_URL from the environment");
        return Ok(url);
    }
    if let Ok(c) = mysql_async::Conn::new(common::root_tcp_opts()).await {
        let _ = c.disconnect().await;
        return Ok("mysql://root@127.0.0.1:3306".into());
    }
    // root over TCP refused: create a TCP test admin through the socket.
    let mut c = mysql_async::Conn::new(common::root_socket_opts())
        .await
        .map_err(|e| {
            format!(
                "cannot connect to MariaDB as root (TCP 127.0.0.1:3306 or {MYSQL_SOCKET}): {e}. \
                 Start it with `{START_MARIADB}` or set DBPROXY_TEST_MYSQL_URL"
            )
        })?;
    c.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{TEST_USER}'@'127.0.0.1' IDENTIFIED BY '{TEST_USER}'"
    ))
    .await?;
    c.query_drop(format!(
        "GRANT ALL PRIVILEGES ON *.* TO '{TEST_USER}'@'127.0.0.1' WITH GRANT OPTION"
    ))
    .await?;
    c.disconnect().await?;
    println!("test: root over TCP refused; created test admin `{TEST_USER}`@127.0.0.1");
    Ok(format!("mysql://{TEST_USER}:{TEST_USER}@127.0.0.1:3306"))
}

fn cargo(args: &[&str], url: &str) -> Result<bool> {
    cargo_with(args, url, &[])
}

fn cargo_with(args: &[&str], url: &str, env: &[(&str, &str)]) -> Result<bool> {
    println!("test: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(common::root())
        .args(args)
        .env("DBPROXY_TEST_MYSQL_URL", url)
        .envs(env.iter().copied())
        .status()?;
    Ok(status.success())
}

/// The chaos suite's long variants (`DBPROXY_CHAOS=long`), one test at a time so that
/// their memory and latency figures are their own.
pub async fn chaos() -> Result<ExitCode> {
    let url = test_admin_url().await?;
    let args = [
        "test",
        "-p",
        "db-proxy",
        "--test",
        "db_proxy",
        "chaos::",
        "--",
        "--test-threads",
        "1",
        "--nocapture",
    ];
    let ok =
        tokio::task::spawn_blocking(move || cargo_with(&args, &url, &[("DBPROXY_CHAOS", "long")]))
            .await??;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn run() -> Result<ExitCode> {
    let url = test_admin_url().await?;
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(format!(
            "redis-server is not installed (tests start private instances): \
             install it with `apt-get install redis-server`; the shared one starts with `{START_REDIS}`"
        )
        .into());
    }
    let steps: [&[&str]; 3] = [
        &["test", "--workspace"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &["fmt", "--all", "--check"],
    ];
    for step in steps {
        let url = url.clone();
        let ok = tokio::task::spawn_blocking(move || cargo(step, &url)).await??;
        if !ok {
            eprintln!("test: `cargo {}` failed", step.join(" "));
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("test: all tests, clippy and fmt passed");
    Ok(ExitCode::SUCCESS)
}
