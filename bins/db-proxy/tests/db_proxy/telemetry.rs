//! The operator's view of the real binary: `/metrics` after a known sequence of requests
//! over TCP (each counter moved by exactly what was sent), `/healthz` and `/readyz` with
//! a private redis-server stopped and started and during the drain, and a log at debug
//! level that never shows the secrets a full run used.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbproxy_protocol::pb::im::base_define::SessionType;
use dbproxy_protocol::pb::im::login::{ImDeviceTokenReq, ImDeviceTokenRsp};
use dbproxy_protocol::pb::im::message::{ImGetMsgListReq, ImGetMsgListRsp, ImMsgData};
use dbproxy_protocol::pb::im::server::{
    ImGetDeviceTokenReq, ImGetDeviceTokenRsp, ImValidateReq, ImValidateRsp,
};
use dbproxy_protocol::{cid, sid, Client};
use dbproxy_testkit::{free_port, TestEnv};

use crate::common::binary::{http_get, Binary, AES_KEY};
use crate::common::{insert_user, single_text, CLIENT_MD5_123456};
use crate::raw::{frame, Raw};

/// One scrape: `name{label="v",...}` (labels sorted) → value.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let mut out = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut parts: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                parts.sort_unstable();
                format!("{name}{{{}}}", parts.join(","))
            }
            None => series.to_owned(),
        };
        out.insert(key, value.parse().unwrap_or(f64::NAN));
    }
    out
}

/// Value of `name` with `labels` in a scrape (0 when absent).
fn value(m: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = if labels.is_empty() {
        name.to_owned()
    } else {
        let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        parts.sort_unstable();
        format!("{name}{{{}}}", parts.join(","))
    };
    m.get(&key).copied().unwrap_or(0.0)
}

fn metrics_section(port: u16) -> String {
    format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"")
}

async fn login(c: &Client, name: &str, password: &str) -> u32 {
    let r: ImValidateRsp = c
        .call_decode(
            cid::OTHER_VALIDATE_REQ,
            &ImValidateReq {
                user_name: name.into(),
                password: password.into(),
                attach_data: None,
            },
        )
        .await
        .unwrap();
    r.result_code
}

async fn send(c: &Client, from: u32, to: u32, content: &str) -> u32 {
    let r: ImMsgData = c
        .call_decode(
            cid::MSG_DATA,
            &single_text(from, to, 1000, Bytes::from(content.to_owned())),
        )
        .await
        .unwrap();
    r.msg_id
}

/// A known sequence over TCP, then every counter it touches moved by exactly that much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_was_sent() {
    let env = TestEnv::new().await;
    let (a, b) = (
        insert_user(&env, "met_a").await,
        insert_user(&env, "met_b").await,
    );
    let port = free_port();
    let proxy = Binary::start(&env, 1, &metrics_section(port));
    let http: SocketAddr = ([127, 0, 0, 1], port).into();
    let before = scrape(http);

    let c = Client::connect(proxy.addr).await.unwrap();
    for _ in 0..3 {
        assert_eq!(login(&c, "met_a", CLIENT_MD5_123456).await, 0);
    }
    for _ in 0..2 {
        assert_eq!(login(&c, "met_a", "wrong").await, 1);
    }
    for n in 0..5 {
        assert_eq!(send(&c, a, b, &format!("counted {n}")).await, n + 1);
    }
    let mut raw = Raw::connect(proxy.addr).await;
    // A login body that does not parse (answered with result 2), two unknown ids, four
    // heartbeats, then an answered request so all of it was read.
    raw.send(&frame(
        sid::OTHER,
        cid::OTHER_VALIDATE_REQ,
        1,
        &[0xff, 0xff],
    ))
    .await;
    raw.send(&frame(sid::OTHER, 0x7777, 2, b"")).await;
    raw.send(&frame(sid::OTHER, 0x7778, 3, b"")).await;
    for seq in 4..8 {
        raw.send(&frame(sid::OTHER, cid::OTHER_HEARTBEAT, seq, b""))
            .await;
    }
    let _undecodable_reply = raw.read_frame().await;
    // A frame whose length is above the maximum closes its own connection.
    let mut long = Raw::connect(proxy.addr).await;
    long.send(&[0x7f, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 7, 7, 3, 0, 1, 0, 0])
        .await;
    long.expect_closed().await;

    let after = scrape(http);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let login_ok = [("command", "CID_OTHER_VALIDATE_REQ"), ("outcome", "ok")];
    assert_eq!(delta("dbproxy_requests_total", &login_ok), 5.0);
    let login_bad = [
        ("command", "CID_OTHER_VALIDATE_REQ"),
        ("outcome", "undecodable"),
    ];
    assert_eq!(delta("dbproxy_requests_total", &login_bad), 1.0);
    let send_ok = [("command", "CID_MSG_DATA"), ("outcome", "ok")];
    assert_eq!(delta("dbproxy_requests_total", &send_ok), 5.0);
    assert_eq!(
        delta(
            "dbproxy_request_duration_seconds_count",
            &[("command", "CID_MSG_DATA")]
        ),
        5.0
    );
    assert_eq!(delta("dbproxy_login_failures_total", &[]), 2.0);
    assert_eq!(delta("dbproxy_login_lockouts_total", &[]), 0.0);
    assert_eq!(
        delta(
            "dbproxy_frames_rejected_total",
            &[("reason", "unknown_command")]
        ),
        2.0
    );
    assert_eq!(
        delta("dbproxy_frames_rejected_total", &[("reason", "too_long")]),
        1.0
    );
    assert_eq!(
        delta("dbproxy_heartbeats_total", &[("direction", "received")]),
        4.0
    );
    assert_eq!(delta("dbproxy_connections_accepted_total", &[]), 3.0);
    // 5 + 5 + 1 frames on the first two connections, plus the too-long one (not a frame).
    assert_eq!(delta("dbproxy_frames_received_total", &[]), 10.0 + 7.0);
    assert_eq!(value(&after, "dbproxy_connections_open", &[]), 2.0);
    assert_eq!(value(&after, "dbproxy_requests_in_flight", &[]), 0.0);
    // The backends were used, and are up.
    assert!(delta("dbproxy_redis_commands_total", &[("redis", "unread")]) >= 5.0);
    assert!(
        delta(
            "dbproxy_mysql_checkout_seconds_count",
            &[("pool", "master")]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "dbproxy_mysql_pool_connections",
            &[("pool", "master")]
        ) >= 1.0
    );
    assert!(
        after
            .iter()
            .filter(|(k, _)| k.starts_with("dbproxy_backend_down{"))
            .all(|(_, v)| *v == 0.0),
        "a backend is marked down"
    );
    assert!(
        value(
            &after,
            "dbproxy_stage_batch_size_count",
            &[("stage", "store_single: batch")]
        ) >= 1.0
    );
    drop(proxy);
    env.cleanup().await;
}

/// `/healthz` answers while the process runs; `/readyz` fails naming Redis while the
/// private redis-server is stopped, is ready again once it is back, and says 503 from the
/// moment SIGTERM arrives while the connections drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_backends_and_the_drain() {
    let mut env = TestEnv::new().await;
    let port = free_port();
    let mut proxy = Binary::start(
        &env,
        1,
        &format!("shutdown_grace_ms = 3000{}", metrics_section(port)),
    );
    let http: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(http_get(http, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(http, "/readyz"), (200, "ready\n".into()));

    env.kill_redis();
    let (status, body) = http_get(http, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("redis unread"), "{body}");
    assert!(!body.contains("mysql"), "MySQL is fine: {body}");
    assert_eq!(http_get(http, "/healthz").0, 200, "alive while not ready");
    env.restart_redis();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(http, "/readyz");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after Redis came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A peer that keeps sending heartbeats holds the drain open for the grace.
    let mut peer = Raw::connect(proxy.addr).await;
    let keep = tokio::spawn(async move {
        for seq in 0..100u16 {
            if !peer
                .try_send(&frame(sid::OTHER, cid::OTHER_HEARTBEAT, seq, b""))
                .await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(http_get(http, "/readyz"), (503, "shutting down\n".into()));
    let status = proxy
        .wait_exit(Duration::from_secs(8))
        .expect("exit after the grace");
    assert!(status.success(), "{status}");
    keep.abort();
    env.cleanup().await;
}

/// A full run at debug level: logins (right and wrong password), messages, a message list,
/// device tokens set and read. No log line holds a message's content, a password, a token
/// or the AES key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_never_shows_secrets() {
    let env = TestEnv::new().await;
    let (a, b) = (
        insert_user(&env, "sec_a").await,
        insert_user(&env, "sec_b").await,
    );
    let proxy = Binary::start_logging(&env, 1, "", "debug");
    let c = Client::connect(proxy.addr).await.unwrap();
    let content = "secret-content-4f1e9a";
    let wrong_password = "secret-password-77c2d0";
    let token = "secret-token-93ab51";
    assert_eq!(login(&c, "sec_a", CLIENT_MD5_123456).await, 0);
    assert_eq!(login(&c, "sec_a", wrong_password).await, 1);
    assert_eq!(send(&c, a, b, content).await, 1);
    let list: ImGetMsgListRsp = c
        .call_decode(
            cid::MSG_LIST_REQUEST,
            &ImGetMsgListReq {
                user_id: b,
                session_type: SessionType::Single as i32,
                session_id: a,
                msg_id_begin: 0,
                msg_cnt: 10,
                attach_data: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(&list.msg_list[0].msg_data[..], content.as_bytes());
    let _: ImDeviceTokenRsp = c
        .call_decode(
            cid::LOGIN_REQ_DEVICETOKEN,
            &ImDeviceTokenReq {
                user_id: a,
                device_token: token.into(),
                client_type: Some(17),
                attach_data: None,
            },
        )
        .await
        .unwrap();
    let tokens: ImGetDeviceTokenRsp = c
        .call_decode(
            cid::OTHER_GET_DEVICE_TOKEN_REQ,
            &ImGetDeviceTokenReq {
                user_id: vec![a],
                attach_data: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(tokens.user_token_info[0].token, token);
    drop(c);
    let mut proxy = proxy;
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(8)).is_some());
    let log = proxy.log_text();
    assert!(log.lines().count() > 10, "debug logging is on: {log}");
    assert!(log.contains("connection closed"), "{log}");
    for secret in [content, wrong_password, CLIENT_MD5_123456, token, AES_KEY] {
        let line = log.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "{secret:?} logged: {line:?}");
    }
    env.cleanup().await;
}

/// Every `dbproxy_...` identifier in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("dbproxy_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The shipped dashboard and alert rules query only series db-proxy exports: every
/// `dbproxy_...` name in them is in `/metrics` after a short run (so neither can rot
/// silently when a metric is renamed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_query_only_exported_series() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dashboard =
        std::fs::read_to_string(root.join("docker/grafana/dashboards/db-proxy.json")).unwrap();
    let rules = std::fs::read_to_string(root.join("docker/prometheus/alerts.yml")).unwrap();
    let queried = metric_names(&format!("{dashboard}\n{rules}"));
    assert!(queried.len() >= 20, "{queried:?}");

    let env = TestEnv::new().await;
    let (a, b) = (
        insert_user(&env, "dash_a").await,
        insert_user(&env, "dash_b").await,
    );
    let port = free_port();
    let proxy = Binary::start(&env, 1, &metrics_section(port));
    let c = Client::connect(proxy.addr).await.unwrap();
    assert_eq!(login(&c, "dash_a", CLIENT_MD5_123456).await, 0);
    assert_eq!(login(&c, "dash_a", "wrong").await, 1);
    assert_eq!(send(&c, a, b, "for the dashboard").await, 1);
    let http: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    let missing = loop {
        let exported: std::collections::BTreeSet<String> = scrape(http)
            .keys()
            .map(|k| k.split('{').next().unwrap_or(k).to_owned())
            .collect();
        let missing: Vec<&String> = queried.iter().filter(|q| !exported.contains(*q)).collect();
        // The group-session sync's first pass may still be running.
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    drop(proxy);
    env.cleanup().await;
}

/// With `limits.slow_request_ms = 0` every request counts as slow: each is logged with its
/// command, time and the backend steps it took (the send: its coalesced batches and Redis
/// calls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_are_logged_with_their_steps() {
    let env = TestEnv::new().await;
    let (a, b) = (
        insert_user(&env, "slow_a").await,
        insert_user(&env, "slow_b").await,
    );
    let mut proxy = Binary::start(&env, 1, "slow_request_ms = 0");
    let c = Client::connect(proxy.addr).await.unwrap();
    assert_eq!(send(&c, a, b, "slow one").await, 1);
    drop(c);
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(8)).is_some());
    let log = proxy.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("slow request") && l.contains("CID_MSG_DATA"))
        .unwrap_or_else(|| panic!("no slow-request line for the send:\n{log}"));
    assert!(line.contains("elapsed_ms"), "{line}");
    assert!(line.contains("batch store_single"), "{line}");
    assert!(line.contains("ms"), "{line}");

    env.cleanup().await;
}
