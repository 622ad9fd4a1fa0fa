//! `cargo xtask db-setup`: database + user (as an admin), then the model's idempotent schema.

use db_proxy::settings::MysqlInstance;
use mysql_async::prelude::Queryable;

use crate::common::{self, Result};

/// Options shared by db-setup and serve.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Admin account URL (default: root over TCP 127.0.0.1:3306, then root via the socket).
    #[arg(long, value_name = "URL")]
    pub admin_url: Option<String>,
}

pub async fn run(args: &Args) -> Result<std::process::ExitCode> {
    setup(args.admin_url.as_deref()).await?;
    Ok(std::process::ExitCode::SUCCESS)
}

pub(crate) fn ident(kind: &str, s: &str) -> Result<String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(s.to_owned())
    } else {
        Err(format!("{kind} `{s}`: only letters, digits and _ are supported by db-setup").into())
    }
}

/// SQL string literal (config values only; MariaDB cannot bind account names or passwords here).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Creates `user` (at localhost, 127.0.0.1 and ::1) with `password` unless it exists and grants
/// it all privileges on database `db`; `db` and `user` must have passed [`ident`].
pub(crate) async fn grant_user(
    admin: &mut mysql_async::Conn,
    db: &str,
    user: &str,
    password: &str,
) -> Result<()> {
    for host in ["localhost", "127.0.0.1", "::1"] {
        admin
            .query_drop(format!(
                "CREATE USER IF NOT EXISTS {}@{} IDENTIFIED BY {}",
                literal(user),
                literal(host),
                literal(password)
            ))
            .await?;
        admin
            .query_drop(format!(
                "GRANT ALL PRIVILEGES ON `{db}`.* TO {}@{}",
                literal(user),
                literal(host)
            ))
            .await?;
    }
    Ok(())
}

/// Creates database/user/grants for master and slave settings, then migrates as the app user.
pub async fn setup(admin_url: Option<&str>) -> Result<()> {
    let s = common::settings()?;
    let (mut admin, how) = common::admin_conn(admin_url).await?;
    println!("db-setup: connected as admin ({how})");
    let mut targets: Vec<&MysqlInstance> = vec![&s.mysql.master];
    if (
        &s.mysql.slave.database,
        &s.mysql.slave.user,
        &s.mysql.slave.password,
    ) != (
        &s.mysql.master.database,
        &s.mysql.master.user,
        &s.mysql.master.password,
    ) {
        targets.push(&s.mysql.slave);
    }
    for m in &targets {
        let db = ident("database", &m.database)?;
        let user = ident("user", &m.user)?;
        admin
            .query_drop(format!(
                "CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            ))
            .await?;
        grant_user(&mut admin, &db, &user, &m.password).await?;
        println!("db-setup: database `{db}` and user `{user}` (localhost, 127.0.0.1, ::1) ready");
    }
    admin.disconnect().await?;

    let mut app = common::app_conn(&s.mysql.master).await?;
    let stmts = dbproxy_model::schema::statements();
    for stmt in &stmts {
        app.query_drop(stmt.as_str()).await.map_err(|e| {
            format!(
                "migration failed: {}: {e}",
                stmt.lines().next().unwrap_or("")
            )
        })?;
    }
    app.disconnect().await?;
    println!(
        "db-setup: schema applied ({} CREATE TABLE IF NOT EXISTS statements) to `{}` at {}",
        stmts.len(),
        s.mysql.master.database,
        s.mysql.master.addr()
    );
    Ok(())
}
