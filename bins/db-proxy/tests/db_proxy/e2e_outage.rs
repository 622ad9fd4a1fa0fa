//! Backends that go away and come back: requests are answered with the documented failure
//! values within the backend timeouts (never a hang, never a crash), and service resumes
//! by itself when the backend returns.

use std::time::{Duration, Instant};

use crate::common::*;
use bytes::Bytes;
use dbproxy_action::ActionSettings;
use dbproxy_protocol::cid;
use dbproxy_protocol::pb::im::base_define::{MsgType, SessionType};
use dbproxy_protocol::pb::im::message::*;
use dbproxy_protocol::pb::im::server::{ImValidateReq, ImValidateRsp};
use dbproxy_protocol::Client;
use dbproxy_testkit::TcpRelay;

fn short_timeouts(c: &mut dbproxy_model::StoreConfig) {
    c.timeouts.connect = Duration::from_millis(500);
    c.timeouts.pool_wait = Duration::from_millis(500);
    c.timeouts.redis_command = Duration::from_millis(500);
}

/// MariaDB through the relay on `port`, over TCP (no switch to the local socket).
fn through_relay(c: &mut dbproxy_model::StoreConfig, port: u16) {
    for m in [&mut c.master, &mut c.slave] {
        m.host = "127.0.0.1".into();
        m.port = port;
        m.socket = None;
        m.prefer_socket = false;
    }
}

async fn login(c: &Client, name: &str) -> u32 {
    let r: ImValidateRsp = call(
        c,
        cid::OTHER_VALIDATE_REQ,
        &ImValidateReq {
            user_name: name.into(),
            password: CLIENT_MD5_123456.into(),
            attach_data: None,
        },
    )
    .await;
    r.result_code
}

async fn send(c: &Client, from: u32, to: u32, text: &str) -> u32 {
    let r: ImMsgData = call(
        c,
        cid::MSG_DATA,
        &ImMsgData {
            from_user_id: from,
            to_session_id: to,
            msg_id: 0,
            create_time: 1000,
            msg_type: MsgType::SingleText as i32,
            msg_data: Bytes::copy_from_slice(text.as_bytes()),
            attach_data: None,
        },
    )
    .await;
    r.msg_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_goes_away_and_comes_back() {
    let relay = TcpRelay::start("127.0.0.1:3306".parse().unwrap()).await;
    let port = relay.port;
    let srv = TestServer::start_with(
        move |c| {
            short_timeouts(c);
            through_relay(c, port);
        },
        ActionSettings::default(),
    )
    .await;
    let c = srv.client().await;
    srv.user("alice").await;
    assert_eq!(login(&c, "alice").await, 0);

    relay.cut();
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(login(&c, "alice").await, 1, "database down → code 1");
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered within the backend timeouts"
    );

    relay.restore();
    eventually("logins work again", || async {
        login(&c, "alice").await == 0
    })
    .await;
    // Outage failures were not counted towards the lockout (Q-L01).
    for _ in 0..5 {
        assert_eq!(login(&c, "alice").await, 0);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_counters_but_not_message_ids() {
    let mut srv = TestServer::start_with(short_timeouts, ActionSettings::default()).await;
    let c = srv.client().await;
    let (a, b) = (srv.user("ann").await, srv.user("ben").await);
    assert_eq!(send(&c, a, b, "one").await, 1);
    assert_eq!(send(&c, a, b, "two").await, 2);

    srv.env.kill_redis();
    let started = Instant::now();
    assert_eq!(
        send(&c, a, b, "lost").await,
        0,
        "no id can be allocated: msg_id 0"
    );
    let u: ImUnreadMsgCntRsp = call(
        &c,
        cid::MSG_UNREAD_CNT_REQUEST,
        &ImUnreadMsgCntReq {
            user_id: b,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(u.total_cnt, 0);
    assert_eq!(
        login(&c, "ann").await,
        0,
        "MySQL-only commands keep working"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered within the backend timeouts"
    );

    // Redis comes back empty: the id counter is reseeded from MySQL, no msgId repeats (Q-M05).
    srv.env.restart_redis();
    let mut id = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while id == 0 {
        assert!(
            Instant::now() < deadline,
            "sends never recovered after the Redis restart"
        );
        id = send(&c, a, b, "three").await;
        if id == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(id, 3);
    let list: ImGetMsgListRsp = call(
        &c,
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
    .await;
    let ids: Vec<u32> = list.msg_list.iter().map(|m| m.msg_id).collect();
    assert_eq!(ids, vec![3, 2, 1]);
    srv.stop().await;
}

/// The 99th percentile of `samples`.
fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    let i = (samples.len() * 99).div_ceil(100).saturating_sub(1);
    samples.get(i).copied().unwrap_or_default()
}

/// Sends until one is stored again, at most `limit` after `from`; how long that took.
async fn recovery(c: &Client, from: Instant, limit: Duration, a: u32, b: u32) -> Duration {
    loop {
        if send(c, a, b, "back").await != 0 {
            return from.elapsed();
        }
        assert!(from.elapsed() < limit, "no recovery within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Once an outage is known (a few requests in a row waited out their timeouts), requests are
/// answered with the failure reply at once until a probe sees the backend again; service is
/// back within a second of the backend's return. Redis killed, then MariaDB frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_outage_is_answered_at_once_and_ends_with_the_backend() {
    let relay = TcpRelay::start("127.0.0.1:3306".parse().unwrap()).await;
    let port = relay.port;
    let mut srv = TestServer::start_with(
        move |c| {
            short_timeouts(c);
            c.timeouts.statement = Duration::from_millis(500);
            through_relay(c, port);
        },
        ActionSettings::default(),
    )
    .await;
    let c = srv.client().await;
    let (a, b) = (srv.user("ann").await, srv.user("ben").await);
    assert_eq!(send(&c, a, b, "one").await, 1);

    for outage in ["redis killed", "mariadb frozen"] {
        if outage == "redis killed" {
            srv.env.kill_redis();
        } else {
            relay.freeze();
        }
        // Detection: the first requests wait out their timeouts.
        let detect = Instant::now();
        for _ in 0..4 {
            assert_eq!(send(&c, a, b, "lost").await, 0, "{outage}");
        }
        let detected = detect.elapsed();
        assert!(detected < Duration::from_secs(8), "{outage}");
        let mut waits = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            assert_eq!(send(&c, a, b, "lost").await, 0, "{outage}");
            waits.push(t.elapsed());
        }
        let p99 = p99(waits);
        assert!(
            p99 < Duration::from_millis(50),
            "{outage}: failure replies p99 {p99:?}"
        );
        let back = Instant::now();
        if outage == "redis killed" {
            srv.env.restart_redis();
        } else {
            relay.thaw();
        }
        let took = recovery(&c, back, Duration::from_secs(5), a, b).await;
        eprintln!(
            "{outage}: 4 detecting requests {detected:?}, then p99 {p99:?}, back after {took:?}"
        );
        assert!(
            took < Duration::from_secs(1),
            "{outage}: back after {took:?}"
        );
    }
    srv.stop().await;
}

/// msfs that stops answering (frozen behind a relay): the first voice messages wait out
/// the msfs timeout, then the breaker answers the following ones at once (msg_id 0, nothing
/// stored), and voice messages are stored again soon after msfs answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_msfs_is_answered_at_once_and_comes_back() {
    let msfs = dbproxy_testkit::FakeMsfs::start(false).await;
    let relay = TcpRelay::start(msfs.site.parse().unwrap()).await;
    let site = format!("127.0.0.1:{}", relay.port);
    let srv = TestServer::start_with(
        move |c| {
            c.msfs_url = site;
            c.timeouts.msfs_upload = Duration::from_millis(400);
            c.timeouts.connect = Duration::from_millis(400);
        },
        ActionSettings::default(),
    )
    .await;
    let c = srv.client().await;
    let (a, b) = (srv.user("vox").await, srv.user("vel").await);
    let mut voice = 3u32.to_be_bytes().to_vec();
    voice.extend_from_slice(b"voice bytes");
    let send_voice = async |c: &Client| {
        let r: ImMsgData = call(
            c,
            cid::MSG_DATA,
            &ImMsgData {
                from_user_id: a,
                to_session_id: b,
                msg_id: 0,
                create_time: 1000,
                msg_type: MsgType::SingleAudio as i32,
                msg_data: Bytes::from(voice.clone()),
                attach_data: None,
            },
        )
        .await;
        r.msg_id
    };
    assert_eq!(send_voice(&c).await, 1);

    relay.freeze();
    let detect = Instant::now();
    for _ in 0..3 {
        assert_eq!(send_voice(&c).await, 0);
    }
    assert!(
        detect.elapsed() >= Duration::from_millis(3 * 400),
        "each waited the timeout"
    );
    let mut waits = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(send_voice(&c).await, 0);
        waits.push(t.elapsed());
    }
    let p99 = p99(waits);
    assert!(
        p99 < Duration::from_millis(50),
        "failure replies p99 {p99:?}"
    );

    relay.thaw();
    let back = Instant::now();
    loop {
        if send_voice(&c).await != 0 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "msfs not used again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "msfs frozen: p99 {p99:?} once known; back after {:?}",
        back.elapsed()
    );
    // Only the first voice message and the one after the return were stored.
    let stored = srv.env.single_messages().await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    srv.stop().await;
}
