//! `db-proxy --doctor [--repair]`: finds the damage the original's races left in the
//! configured database and Redis (`dbproxy_model::doctor`), reports counts and examples,
//! and with `--repair` repairs it, printing every change. Exit status: 0 when nothing is
//! (left) damaged, 1 when damage is found (dry run) or remains, 2 on a failure.

use std::process::ExitCode;

use dbproxy_model::doctor::Finding;
use dbproxy_model::Store;

use crate::settings::Loaded;

/// Runs the check (and the repair when `repair`), printing the report to stdout.
pub async fn run(loaded: &Loaded, repair: bool) -> ExitCode {
    let mut config = loaded.settings.store_config();
    // Whole-table scans and per-relation copies take longer than a request's unit of work.
    config.timeouts.statement = std::time::Duration::from_secs(3600);
    let store = match Store::connect(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("db-proxy --doctor: cannot connect the backends: {e}");
            return ExitCode::from(2);
        }
    };
    let found = match store.doctor().check().await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("db-proxy --doctor: check failed: {e}");
            return ExitCode::from(2);
        }
    };
    print_findings("found", &found);
    if !repair {
        return if damaged(&found) {
            println!("# dry run: nothing changed; run again with --repair to repair");
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    match store.doctor().repair().await {
        Ok(changes) => {
            for c in &changes {
                println!("changed: {c}");
            }
            println!("# {} changes", changes.len());
        }
        Err(e) => {
            eprintln!("db-proxy --doctor: repair failed: {e}");
            return ExitCode::from(2);
        }
    }
    match store.doctor().check().await {
        Ok(left) => {
            print_findings("left", &left);
            if damaged(&left) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("db-proxy --doctor: check after the repair failed: {e}");
            ExitCode::from(2)
        }
    }
}

fn damaged(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.count > 0)
}

fn print_findings(what: &str, findings: &[Finding]) {
    for f in findings {
        println!("{what}: {}: {}", f.damage.name(), f.count);
        for e in &f.examples {
            println!("    e.g. {e}");
        }
    }
}
