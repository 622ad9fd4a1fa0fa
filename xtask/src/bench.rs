//! `cargo xtask bench`: a pipelined load generator for db-proxy on the protocol crate's
//! `Client` (issue 5). Modules: `options` (CLI), `backend` (bench database/Redis, server
//! process, /proc figures), `prepare` (seeded users and conversations, untimed), `workload`
//! (request choice and checks), `direct` (the same model calls without the proxy), `ceiling`
//! (in-process trivial server), `stats` (histogram, counters), `report` (text / JSON).

mod backend;
mod ceiling;
mod direct;
mod options;
mod prepare;
mod report;
mod stats;
mod workload;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbproxy_protocol::{Client, ClientOptions};
use rand::SeedableRng;

pub use backend::fresh_on as fresh_backends;
pub use options::Args;
use options::Mode;
pub use prepare::{user_name, PASSWORD};
use report::{Report, StageReport};
use stats::{Failure, Live, Recorder};
use workload::{Target, Workload};

use crate::common::Result;

pub async fn run(args: &Args) -> Result<ExitCode> {
    if cfg!(debug_assertions) && !args.allow_debug {
        return rerun_release().await;
    }
    if args.direct && matches!(args.mode, Mode::Ceiling) {
        return Err("--direct measures the backends; it has no ceiling mode".into());
    }
    if args.mode.needs_population() && args.population.is_none() {
        return Err(format!(
            "mode {} reads groups and long conversations: build them with `cargo xtask \
             populate` and pass --population DATABASE",
            args.mode
        )
        .into());
    }
    if args.mode == Mode::Ceiling && args.addr.is_some() {
        return Err("--mode ceiling runs its own in-process server; drop --addr".into());
    }
    let report = if args.mode == Mode::Ceiling {
        run_ceiling(args).await?
    } else if args.direct {
        run_direct(args).await?
    } else {
        run_proxy(args).await?
    };
    if let Some(path) = &args.json_out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{}", report.json())?;
    }
    if args.json {
        println!("{}", report.json());
    } else {
        println!("{}", report.text());
        if args.stages {
            for s in &report.stages {
                println!("{}", s.text());
            }
        }
    }
    Ok(if report.requests > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An unoptimised client would be the bottleneck: run the same command line again from an
/// optimised build of xtask.
async fn rerun_release() -> Result<ExitCode> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    eprintln!(
        "bench: this xtask is an unoptimised build; running `cargo run --release -p xtask -- {}`",
        argv.join(" ")
    );
    let status =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(crate::common::root())
            .args(["run", "--quiet", "--release", "-p", "xtask", "--"])
            .args(&argv)
            .status()
            .await?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

async fn run_ceiling(args: &Args) -> Result<Report> {
    let server = ceiling::TrivialServer::start().await?;
    let pop = Arc::new(prepare::synthetic(args.users));
    let target = connect(args, server.addr).await?;
    let mut report = Report::new(
        Mode::Ceiling.name(),
        "in-process trivial server".into(),
        args,
    );
    let result = measure(
        args,
        Workload::new(Mode::Ceiling, pop)?,
        target,
        None,
        &mut report,
    )
    .await;
    server.stop().await;
    result.map(|()| report)
}

/// The backends and the population of a run: a built population as it is, or a fresh bench
/// database with its preparation.
async fn backends_and_population(args: &Args) -> Result<(backend::Backends, prepare::Population)> {
    match &args.population {
        Some(db) => {
            let manifest = crate::populate::Manifest::load(db)?;
            let b = backend::population(&manifest).await?;
            let pop = prepare::Population::from_manifest(&manifest);
            eprintln!(
                "bench: population `{db}`: {} heavy users, {} conversations ({} with >= {} messages)",
                pop.users.len(),
                pop.pairs.len(),
                pop.fetch_pairs.len(),
                prepare::FETCH_COUNT
            );
            Ok((b, pop))
        }
        None => {
            let b = backend::fresh(args).await?;
            let pop = prepare::prepare(&b.store, args).await?;
            Ok((b, pop))
        }
    }
}

async fn run_direct(args: &Args) -> Result<Report> {
    let (b, pop) = backends_and_population(args).await?;
    let pop = Arc::new(pop);
    let mut report = Report::new(args.mode.name(), "direct MariaDB/Redis".into(), args);
    let workload = Workload::new(args.mode, pop)?;
    settle().await;
    measure(args, workload, Target::Direct(b.store), None, &mut report).await?;
    Ok(report)
}

async fn run_proxy(args: &Args) -> Result<Report> {
    let (b, pop, server, addr, label) = match &args.addr {
        Some(a) => {
            let addr = tokio::net::lookup_host(a.as_str())
                .await?
                .next()
                .ok_or_else(|| format!("--addr {a}: no address"))?;
            crate::common::tcp_reachable(&addr.to_string())
                .await
                .map_err(|e| format!("--addr {a}: {e}"))?;
            let b = backend::existing(args).await?;
            let pop = prepare::prepare(&b.store, args).await?;
            (b, pop, None, addr, format!("db-proxy at {a}"))
        }
        None => {
            let (b, pop) = backends_and_population(args).await?;
            let server =
                backend::ServerProcess::start(&b.settings, args.no_build, args.legacy_conf).await?;
            let addr = server.addr;
            let label = if args.legacy_conf {
                "db-proxy (started by bench, shipped-style dbproxyserver.conf)"
            } else {
                "db-proxy (started by bench)"
            };
            (b, pop, Some(server), addr, label.into())
        }
    };
    let pop = Arc::new(pop);
    drop(b);
    let mut report = Report::new(args.mode.name(), label, args);
    let workload = Workload::new(args.mode, pop)?;
    let target = connect(args, addr).await?;
    settle().await;
    let result = measure(
        args,
        workload,
        target,
        server.as_ref().map(|s| s.pid()),
        &mut report,
    )
    .await;
    if let Some(s) = server {
        let log = s.log_path().to_path_buf();
        if let Err(e) = s.stop().await {
            eprintln!("bench: {e}");
        }
        // The server writes its stage counters to its log when it stops.
        match std::fs::read_to_string(&log) {
            Ok(text) => {
                report.stages = text
                    .lines()
                    .filter_map(StageReport::from_log_line)
                    .collect();
            }
            Err(e) => eprintln!("bench: cannot read {}: {e}", log.display()),
        }
    }
    result.map(|()| report)
}

async fn connect(args: &Args, addr: SocketAddr) -> Result<Target> {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(args.timeout_ms),
        ..ClientOptions::default()
    };
    let mut clients = Vec::new();
    for _ in 0..args.conns {
        let c = Client::connect_with(addr, options.clone())
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        clients.push(c);
    }
    Ok(Target::Proxy {
        clients,
        depth: args.depth as usize,
    })
}

/// Waits (at most 30 s) until the local MariaDB is idle: below a tenth of a core over half
/// a second. The database of the previous run is dropped and this run's preparation
/// written just before; InnoDB flushes and purges that in the background, which would
/// otherwise take CPU from the measured window.
async fn settle() {
    let procs = backend::ProcStats::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = false;
    while Instant::now() < deadline {
        let Some(c0) = procs.cpu_seconds_of(MARIADB_NAMES) else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(c1) = procs.cpu_seconds_of(MARIADB_NAMES) else {
            return;
        };
        if c1 - c0 < 0.05 {
            return;
        }
        if !said {
            eprintln!("bench: waiting for MariaDB to go idle");
            said = true;
        }
    }
    eprintln!("bench: MariaDB still busy after 30 s; measuring anyway");
}

/// Runs conns x depth workers for warmup + seconds, records the measured window, and fills
/// `report` (plus the server's CPU and peak RSS when `server_pid` is given).
async fn measure(
    args: &Args,
    workload: Workload,
    target: Target,
    server_pid: Option<u32>,
    report: &mut Report,
) -> Result<()> {
    let template = Recorder::new()?;
    let live = Arc::new(Live::default());
    let workload = Arc::new(workload);
    let target = Arc::new(target);
    let workers = (args.conns as usize) * (args.depth as usize);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let (live, workload, target) = (live.clone(), workload.clone(), target.clone());
        let mut rec = template.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64 + 1);
            while !live.stopped() {
                let op = workload.next(&mut rng);
                let t0 = Instant::now();
                let result = target.exec(i, &op).await;
                let measuring = live.measuring();
                match result {
                    Ok(()) => {
                        live.count(true);
                        if measuring {
                            rec.success(t0.elapsed());
                        }
                    }
                    Err((kind, detail)) => {
                        live.count(false);
                        if measuring {
                            rec.failure(kind, detail);
                        }
                        if kind == Failure::Closed {
                            break;
                        }
                    }
                }
            }
            rec
        }));
    }

    let progress = tokio::spawn(progress(live.clone(), args.warmup));
    let procs = backend::ProcStats::new();
    let self_pid = std::process::id();

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let cpu0 = server_pid.map(|p| procs.cpu_seconds(p));
    let self0 = procs.cpu_seconds(self_pid).ok();
    let mariadb0 = procs.cpu_seconds_of(MARIADB_NAMES);
    let redis0 = procs.cpu_seconds_of(REDIS_NAMES);
    let stages0 = stage_timings(&target);
    live.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    live.measuring.store(false, Ordering::Relaxed);
    let window = started.elapsed().as_secs_f64();
    let cpu1 = server_pid.map(|p| procs.cpu_seconds(p));
    let self1 = procs.cpu_seconds(self_pid).ok();
    let mariadb1 = procs.cpu_seconds_of(MARIADB_NAMES);
    let redis1 = procs.cpu_seconds_of(REDIS_NAMES);
    let stages1 = stage_timings(&target);
    let rss = server_pid.map(backend::ProcStats::peak_rss_kib);
    live.stop.store(true, Ordering::Relaxed);
    progress.abort();
    eprintln!();

    let mut total = template;
    let grace = Duration::from_millis(args.timeout_ms) + Duration::from_secs(2);
    for h in handles {
        match tokio::time::timeout(grace, h).await {
            Ok(Ok(rec)) => total.merge(&rec),
            Ok(Err(e)) => eprintln!("bench: worker failed: {e}"),
            Err(_) => eprintln!("bench: a worker did not finish within {grace:?}"),
        }
    }
    report.fill(&total, window);
    if let (Some(Ok(a)), Some(Ok(b))) = (cpu0, cpu1) {
        report.server_cpu_s = Some(b - a);
    }
    if let Some(Ok(kib)) = rss {
        report.server_peak_rss_mib = Some(kib as f64 / 1024.0);
    }
    if let (Some(a), Some(b)) = (self0, self1) {
        report.bench_cpu_s = Some(b - a);
    }
    if let (Some(a), Some(b)) = (mariadb0, mariadb1) {
        report.mariadb_cpu_s = Some(b - a);
    }
    if let (Some(a), Some(b)) = (redis0, redis1) {
        report.redis_cpu_s = Some(b - a);
    }
    report.stages = stages1
        .iter()
        .map(|now| {
            let before = stages0.iter().find(|s| s.name == now.name);
            let delta = before.map_or_else(|| now.clone(), |b| now.since(b));
            StageReport::new(&delta)
        })
        .filter(|s| s.runs > 0)
        .collect();
    Ok(())
}

/// The model's stage counters of a direct run (none through the proxy: they live in the
/// server process).
fn stage_timings(target: &Target) -> Vec<dbproxy_model::StageTiming> {
    match target {
        Target::Direct(store) => store.timings(),
        Target::Proxy { .. } => Vec::new(),
    }
}

/// Process names of a local MariaDB / MySQL server and of Redis (all instances summed).
const MARIADB_NAMES: &[&str] = &["mariadbd", "mysqld"];
const REDIS_NAMES: &[&str] = &["redis-server"];

/// Once per second on stderr: elapsed, requests/s and errors of the last second.
async fn progress(live: Arc<Live>, warmup: u64) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut ok0, mut err0) = (0u64, 0u64);
    loop {
        tick.tick().await;
        let ok = live.ok.load(Ordering::Relaxed);
        let err = live.errors.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs();
        let phase = if secs <= warmup { " (warmup)" } else { "" };
        let line = format!(
            "[{secs:>4}s] {:>8} req/s  errors {:>6} (total {err}){phase}",
            ok - ok0,
            err - err0
        );
        let mut e = std::io::stderr().lock();
        let _ = if tty {
            write!(e, "\r{line}\x1b[K")
        } else {
            writeln!(e, "{line}")
        };
        let _ = e.flush();
        (ok0, err0) = (ok, err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use dbproxy_action::{ActionSettings, Actions};
    use dbproxy_testkit::TestEnv;
    use dbproxy_transport::{Server, ServerConfig};
    use workload::Op;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// A db-proxy server over `env`'s store on a free port: its address, the stop sender and
    /// the task running it.
    async fn serve(
        env: &TestEnv,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let actions = Actions::new(env.store.clone(), ActionSettings::default());
        let config = ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            ..ServerConfig::default()
        };
        let server = Server::bind(config, Arc::new(db_proxy::app::ActionHandler(actions)))
            .await
            .expect("bind");
        let addr = server.local_addrs()[0];
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            let _ = server
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        (addr, stop, running)
    }

    fn args(list: &[&str]) -> Args {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(list);
        Cli::parse_from(argv).args
    }

    /// The preparation and the success checks of every workload, against real backends:
    /// through a db-proxy server over TCP and straight through the model crate. The checks
    /// also reject what they must (unknown user, a page shorter than 20).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workloads_succeed_through_the_proxy_and_directly() {
        let env = TestEnv::new().await;
        let a = args(&["--mode", "mix", "--users", "12", "--peers", "3"]);
        let pop = Arc::new(prepare::prepare(&env.store, &a).await.expect("prepare"));
        assert_eq!(pop.users.len(), 12);
        assert_eq!(pop.pairs.len(), 36);
        assert_eq!(pop.fetch_pairs.len(), 12);

        let (addr, stop, running) = serve(&env).await;

        let proxy = connect(&args(&["--conns", "1"]), addr)
            .await
            .expect("connect");
        let direct = Target::Direct(env.store.clone());
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for target in [&proxy, &direct] {
            for mode in [
                Mode::Login,
                Mode::Send,
                Mode::Fetch,
                Mode::Unread,
                Mode::Mix,
            ] {
                let w = Workload::new(mode, pop.clone()).expect("workload");
                for _ in 0..20 {
                    let op = w.next(&mut rng);
                    if let Err(e) = target.exec(0, &op).await {
                        panic!("{mode} {op:?}: {e:?}");
                    }
                }
            }
            let unknown = Op::Login {
                name: "nobody".into(),
            };
            let err = target.exec(0, &unknown).await.expect_err("unknown user");
            assert_eq!(err.0, Failure::BadResult);
            // (i, i + 2) got one message during preparation: a short page.
            let (u0, u2) = (pop.users[0].id, pop.users[2].id);
            let short = Op::Fetch { user: u0, peer: u2 };
            let err = target.exec(0, &short).await.expect_err("short page");
            assert_eq!(err.0, Failure::BadResult);
        }

        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
        env.cleanup().await;
    }

    /// The population modes on a small built population: every request succeeds through a
    /// server over TCP and through the model calls, and their checks reject what they must.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn population_modes_succeed_through_the_proxy_and_directly() {
        let env = TestEnv::new().await;
        let sizes = crate::populate::Sizes {
            users: 120,
            relations: 150,
            messages: 3_000,
            groups: 10,
            min_members: 3,
            max_members: 12,
            group_messages: 300,
            heavy: 2,
            heavy_sessions: 30,
            heavy_groups: 6,
            heavy_unread: 5,
        };
        let (_, manifest) = crate::populate::tests::populate_env(&env, sizes, 3).await;
        let pop = Arc::new(prepare::Population::from_manifest(&manifest));
        assert!(
            !pop.histories.is_empty(),
            "conversations of 20 messages or more"
        );

        let (addr, stop, running) = serve(&env).await;
        let proxy = connect(&args(&["--conns", "1"]), addr)
            .await
            .expect("connect");
        let direct = Target::Direct(env.store.clone());
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for target in [&proxy, &direct] {
            for mode in [
                Mode::Sessions,
                Mode::GroupList,
                Mode::GroupInfo,
                Mode::ByIds,
                Mode::Fetch,
                Mode::Unread,
                Mode::ReadUnread,
                Mode::Login,
            ] {
                let w = Workload::new(mode, pop.clone()).expect("workload");
                for _ in 0..10 {
                    let op = w.next(&mut rng);
                    if let Err(e) = target.exec(0, &op).await {
                        panic!("{mode} {op:?}: {e:?}");
                    }
                }
            }
            // A group the user is not in has no info; msgIds beyond the history are not found.
            let user = pop.users[0].id;
            let other = Op::GroupInfo {
                user,
                groups: vec![999_999],
            };
            assert_eq!(
                target.exec(0, &other).await.expect_err("no group").0,
                Failure::BadResult
            );
            let (u, p, n) = pop.histories[0];
            let beyond = Op::ByIds {
                user: u,
                peer: p,
                ids: vec![n + 1],
            };
            assert_eq!(
                target.exec(0, &beyond).await.expect_err("no such msgId").0,
                Failure::BadResult
            );
        }
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
        env.cleanup().await;
    }
}
