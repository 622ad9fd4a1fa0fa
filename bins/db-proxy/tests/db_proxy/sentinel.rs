//! db-proxy behind Redis Sentinel (real redis-server master, replica and three sentinels): a
//! master killed under send load is replaced by its replica; db-proxy follows the sentinels
//! to the new master, the errors stay within the failover and msgIds stay distinct.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbproxy_model::Store;
use dbproxy_protocol::cid;
use dbproxy_protocol::pb::im::message::ImMsgData;
use dbproxy_testkit::{SentinelSet, TestEnv};

use crate::common::binary::Binary;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_failover_under_send_load() {
    let mut set = SentinelSet::start();
    let env = TestEnv::new().await;
    let a = insert_user(&env, "sentinel_a").await;
    let b = insert_user(&env, "sentinel_b").await;
    let sentinels = set
        .sentinel_addrs()
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // The msgId counters (instance unread) wait for the replica after each allocation.
    let section = |name: &str| {
        let acks = if name == "unread" {
            "replica_acks = 1\n"
        } else {
            ""
        };
        format!(
            "[redis.{name}]\ndb = 1\nsentinels = [{sentinels}]\nsentinel_service = \"{}\"\n{acks}",
            dbproxy_testkit::sentinel::SERVICE
        )
    };
    let redis = ["unread", "group_set", "token", "group_member"]
        .map(section)
        .concat();
    let bin = Binary::start_with_redis(&env, "", &redis);
    let c = client_at(bin.addr).await;

    // One sender, both directions, as fast as replies come.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let last_failure = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let load = {
        let (stop, ok, failed, last_failure) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            last_failure.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let (from, to) = if n.is_multiple_of(2) { (a, b) } else { (b, a) };
                let req = single_text(from, to, 1_700_000_000, Bytes::from(format!("m{n}")));
                match c.call_decode::<ImMsgData>(cid::MSG_DATA, &req).await {
                    Ok(rsp) if rsp.msg_id != 0 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        *last_failure.lock().unwrap() = Some(Instant::now());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ok.load(Ordering::Relaxed) > 0, "sends before the failover");
    // A replica that does not acknowledge slows the sends (each waits out its WAIT) but
    // fails none.
    set.pause_replica(true);
    let before = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    set.pause_replica(false);
    assert!(
        ok.load(Ordering::Relaxed) > before,
        "sends while the replica is paused"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failed.load(Ordering::Relaxed), 0);

    let killed = Instant::now();
    set.kill_master();
    // Wait for the sentinels to promote the replica, then for sends that succeed with 2 s
    // without a failure (a send may also just wait out the failover and succeed).
    let deadline = killed + Duration::from_secs(40);
    let mut ok_at_promotion = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ok_at_promotion.is_none() && set.current_master_port() == Some(set.replica_port) {
            ok_at_promotion = Some(ok.load(Ordering::Relaxed));
        }
        let quiet = last_failure
            .lock()
            .unwrap()
            .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
        let sent_since = ok_at_promotion.is_some_and(|n| ok.load(Ordering::Relaxed) > n);
        if quiet && sent_since && killed.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery within 40 s");
    }
    let ok_before = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let recovered = last_failure.lock().unwrap().map(|t| t - killed);
    let errors = failed.load(Ordering::Relaxed);
    eprintln!(
        "sentinel failover: {errors} failed sends, last failure {recovered:?} after the kill, \
         {} sends stored",
        ok.load(Ordering::Relaxed)
    );
    assert!(
        ok.load(Ordering::Relaxed) > ok_before,
        "sends after the failover"
    );
    assert!(
        recovered.is_none_or(|r| r < Duration::from_secs(30)),
        "recovery: {recovered:?}"
    );

    // The messages: one relation, msgIds distinct, the counter at or above the highest.
    let mut ids: Vec<u32> = env.single_messages().await.iter().map(|m| m.1).collect();
    let stored = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), stored, "distinct msgIds across the failover");
    let mut cfg = env.config.clone();
    for r in [
        &mut cfg.unread,
        &mut cfg.group_set,
        &mut cfg.token,
        &mut cfg.group_member,
    ] {
        r.sentinels = set.sentinel_addrs();
        r.sentinel_service = dbproxy_testkit::sentinel::SERVICE.into();
    }
    let store = Store::connect(&cfg)
        .await
        .expect("store through the sentinels");
    let findings = store.doctor().check().await.expect("doctor");
    assert!(findings.iter().all(|f| f.count == 0), "{findings:?}");
    drop(store);
    drop(bin);
    env.cleanup().await;
}
