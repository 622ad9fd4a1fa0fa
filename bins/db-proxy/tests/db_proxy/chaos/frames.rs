//! Malformed traffic beside twenty good connections, against the real binary
//! (docs/compatibility.md#frame-length-checks, #heartbeat-and-idle-timeout,
//! #request-processing-and-strict-decoding). Twenty connections keep asking questions with
//! known answers for the whole run while other connections send every kind of garbage:
//! bad frame lengths (closed at once), a header and then silence (closed by the idle
//! timeout), half frames, bodies that do not parse, lack required fields or carry
//! undeclared enum values, unknown command ids (dropped, the connection keeps serving), a
//! burst of heartbeats, and 500 idle connections at once. The good connections must see no
//! error and a bounded p99; the process must survive with bounded memory.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbproxy_protocol::pb::im::login::{ImQueryPushShieldReq, ImQueryPushShieldRsp};
use dbproxy_protocol::pb::im::server::{ImValidateReq, ImValidateRsp};
use dbproxy_protocol::{cid, lookup, sid, Client, ClientOptions, COMMANDS};
use dbproxy_testkit::TestEnv;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{p99, scaled};
use crate::common::binary::Binary;
use crate::common::{insert_user, CLIENT_MD5_123456};
use crate::raw::{body_of, cid_of, frame, hex, seq_of, Raw};

/// The idle timeout the binary runs with here.
const IDLE: Duration = Duration::from_millis(3000);
/// A connection closed for a framing error is closed well before the idle timeout could
/// have done it.
const FRAMING_CLOSE: Duration = Duration::from_millis(1500);
/// Good connections.
const GOOD: usize = 20;
/// Idle connections opened at once.
const IDLE_CONNECTIONS: usize = 500;

/// What one good connection saw.
#[derive(Default)]
struct GoodReport {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

/// One good connection: alternately bob's push shield (result 0, status 0) and alice's
/// login (result 0, her user id), each with its own attach, until `stop`.
async fn good_loop(
    addr: SocketAddr,
    index: u32,
    alice: u32,
    bob: u32,
    stop: CancellationToken,
) -> GoodReport {
    let mut report = GoodReport::default();
    let c = Client::connect_with(
        addr,
        ClientOptions {
            request_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("good connection");
    let mut n: u32 = 0;
    while !stop.is_cancelled() {
        n += 1;
        let mut a = index.to_be_bytes().to_vec();
        a.extend_from_slice(&n.to_be_bytes());
        let attach = Some(Bytes::from(a));
        let started = Instant::now();
        let outcome = if n.is_multiple_of(2) {
            c.call_decode::<ImQueryPushShieldRsp>(
                cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
                &ImQueryPushShieldReq {
                    user_id: bob,
                    attach_data: attach.clone(),
                },
            )
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let want = ImQueryPushShieldRsp {
                    user_id: bob,
                    result_code: 0,
                    shield_status: Some(0),
                    attach_data: attach,
                };
                if r == want {
                    Ok(())
                } else {
                    Err(format!("wrong push-shield reply {r:?}"))
                }
            })
        } else {
            c.call_decode::<ImValidateRsp>(
                cid::OTHER_VALIDATE_REQ,
                &ImValidateReq {
                    user_name: "alice".into(),
                    password: CLIENT_MD5_123456.into(),
                    attach_data: attach.clone(),
                },
            )
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let ok = r.result_code == 0
                    && r.user_name == "alice"
                    && r.user_info.as_ref().map(|u| u.user_id) == Some(alice)
                    && r.attach_data == attach;
                if ok {
                    Ok(())
                } else {
                    Err(format!("wrong validate reply {r:?}"))
                }
            })
        };
        report.latencies.push(started.elapsed());
        if let Err(e) = outcome {
            report
                .errors
                .push(format!("good connection {index}, request {n}: {e}"));
        }
    }
    report
}

/// Reads (and discards) until the server closes `s`; how long that took from `since`, or
/// `None` when it stayed open until `limit` after `since`.
async fn closed_after(s: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

/// A bob push-shield query as a raw frame.
fn query_frame(bob: u32, seq: u16) -> Vec<u8> {
    let body = ImQueryPushShieldReq {
        user_id: bob,
        attach_data: None,
    }
    .encode_to_vec();
    frame(sid::LOGIN, cid::LOGIN_REQ_QUERY_PUSH_SHIELD, seq, &body)
}

/// Asserts `f` is bob's push-shield answer.
fn assert_query_reply(f: &[u8], bob: u32) {
    assert_eq!(cid_of(f), cid::LOGIN_RES_QUERY_PUSH_SHIELD);
    assert_eq!(
        ImQueryPushShieldRsp::decode(body_of(f)).unwrap(),
        ImQueryPushShieldRsp {
            user_id: bob,
            result_code: 0,
            shield_status: Some(0),
            attach_data: Some(Bytes::new()),
        }
    );
}

/// A 16-byte header announcing `length` (any value) for a push-shield query.
fn header(length: u32) -> Vec<u8> {
    let mut h = frame(sid::LOGIN, cid::LOGIN_REQ_QUERY_PUSH_SHIELD, 9, &[]);
    h[..4].copy_from_slice(&length.to_be_bytes());
    h
}

/// Frame lengths 0..=15, each on its own connection after one answered request, and two
/// above the 4 MiB cap: every one closed by the server well before the idle timeout.
/// Returns how many connections were closed that way.
async fn bad_lengths(addr: SocketAddr, bob: u32) -> usize {
    let mut lengths: Vec<u32> = (0..16).collect();
    lengths.extend([4 * 1024 * 1024 + 1, u32::MAX]);
    for &len in &lengths {
        let mut r = Raw::connect(addr).await;
        let f = r.call(&query_frame(bob, 1)).await;
        assert_query_reply(&f, bob);
        let mut bytes = header(len);
        // Whatever a desynchronised reader would take as the next frame.
        bytes.extend_from_slice(&query_frame(bob, 2));
        r.send(&bytes).await;
        let sent = Instant::now();
        r.expect_closed().await;
        let took = sent.elapsed();
        assert!(
            took < FRAMING_CLOSE,
            "length {len}: closed after {took:?}, not for the framing error"
        );
    }
    lengths.len()
}

/// A header announcing a 100-byte frame and then nothing: closed by the idle timeout, not
/// earlier, and within 2 s of it. Returns the time to the close.
async fn header_then_silence(addr: SocketAddr) -> Duration {
    let mut s = connect(addr).await;
    s.write_all(&header(100)).await.unwrap();
    let sent = Instant::now();
    let took = closed_after(&mut s, sent, IDLE + Duration::from_secs(5))
        .await
        .expect("a header then silence: not closed by the idle timeout");
    assert!(
        took >= IDLE - Duration::from_secs(1) && took <= IDLE + Duration::from_secs(2),
        "a header then silence: closed after {took:?} (idle timeout {IDLE:?})"
    );
    took
}

/// Half a header, and half a frame, then the peer goes away.
async fn half_frames_then_close(addr: SocketAddr, bob: u32) {
    let f = query_frame(bob, 1);
    let mut s = connect(addr).await;
    s.write_all(&f[..8]).await.unwrap();
    drop(s);
    let mut s = connect(addr).await;
    let mut long = header(100);
    long.extend_from_slice(&[0x08; 42]);
    s.write_all(&long).await.unwrap();
    drop(s);
    let mut s = connect(addr).await;
    s.write_all(&f[..f.len() - 1]).await.unwrap();
    s.shutdown().await.unwrap();
    // The server sees EOF mid-frame: nothing to answer, it closes its side.
    let took = closed_after(&mut s, Instant::now(), Duration::from_secs(10))
        .await
        .expect("half a frame then EOF: server kept the connection");
    assert!(took < FRAMING_CLOSE, "half a frame then EOF: {took:?}");
}

/// Bodies that do not parse, bodies missing required fields, undeclared values of required
/// enums and unknown command ids, all on one connection, then valid requests: only the
/// documented answers come back (validate: result 2; a body the strict decoder accepts:
/// the command's reply) and the connection keeps serving. Returns the frames sent.
async fn bad_bodies(addr: SocketAddr, bob: u32) -> usize {
    // What must be answered follows from the command table and the strict decoder:
    // validate answers a body that does not parse (result 2), the others stay silent.
    let not_protobuf: [&[u8]; 6] = [
        &hex("08 ff ff"),                      // truncated varint
        &hex("0f 01"),                         // wire type 7
        &hex("ff ff ff ff ff ff ff ff ff ff"), // key varint longer than 64 bits
        b"this is not protobuf",
        &hex("00"),    // zero tag
        &hex("0a 7f"), // length beyond the body
    ];
    let missing_required: [&[u8]; 2] = [&[], &hex("a2 01 00")];
    let mut r = Raw::connect(addr).await;
    let mut seq: u16 = 1;
    // seq → the reply's command id, for bodies the strict decoder accepts.
    let mut answered: BTreeMap<u16, u16> = BTreeMap::new();
    let mut validate_failures: BTreeSet<u16> = BTreeSet::new();
    let mut missing_rejected = 0usize;
    let mut batch = Vec::new();
    for c in &COMMANDS {
        let ty = c.request_type();
        for body in not_protobuf {
            assert!(
                dbproxy_protocol::decode::validate(&ty, body).is_err(),
                "{ty}: {body:02x?} must not parse"
            );
            if c.request_cid == cid::OTHER_VALIDATE_REQ {
                validate_failures.insert(seq);
            }
            batch.extend(frame(c.request_sid(), c.request_cid, seq, body));
            seq += 1;
        }
        for body in missing_required {
            let parses = dbproxy_protocol::decode::validate(&ty, body).is_ok();
            if parses {
                if let Some((_, reply)) = c.response {
                    answered.insert(seq, reply);
                }
            } else {
                missing_rejected += 1;
                if c.request_cid == cid::OTHER_VALIDATE_REQ {
                    validate_failures.insert(seq);
                }
            }
            batch.extend(frame(c.request_sid(), c.request_cid, seq, body));
            seq += 1;
        }
    }
    assert!(
        missing_rejected >= 2 * (COMMANDS.len() - 2),
        "most requests have required fields: {missing_rejected} rejected"
    );
    // Undeclared value of a required enum: remove-session type 7, message list type 9,
    // message data msg_type 5.
    for (service, command, body) in [
        (2, cid::BUDDY_LIST_REMOVE_SESSION_REQ, "08 01 10 07 18 02"),
        (3, cid::MSG_LIST_REQUEST, "08 01 10 09 18 02 20 00 28 0a"),
        (3, cid::MSG_DATA, "08 01 10 02 18 00 20 01 28 05 32 01 61"),
    ] {
        let ty = lookup(command).unwrap().request_type();
        assert!(dbproxy_protocol::decode::validate(&ty, &hex(body)).is_err());
        batch.extend(frame(service, command, seq, &hex(body)));
        seq += 1;
    }
    // Unknown command ids, under real and made-up service ids.
    for (service, command) in [
        (7, 0x0799),
        (0xffff, 0x0000),
        (0, 0xffff),
        (2, 0x020c),
        (7, cid::OTHER_STOP_RECV_PACKET),
        (1, 0x0101),
        (3, 0x0300),
    ] {
        assert!(
            lookup(command).is_none(),
            "{command:#06x} is a known command"
        );
        batch.extend(frame(service, command, seq, &query_frame(bob, 0)[16..]));
        seq += 1;
    }
    r.send(&batch).await;
    let valid = seq;
    r.send(&query_frame(bob, valid)).await;
    let mut want: BTreeSet<u16> = answered.keys().chain(&validate_failures).copied().collect();
    want.insert(valid);
    while !want.is_empty() {
        let f = r.read_frame().await;
        let s = seq_of(&f);
        assert!(
            want.remove(&s),
            "unexpected reply to seq {s} (cid {:#06x}): {f:02x?}",
            cid_of(&f)
        );
        if s == valid {
            assert_query_reply(&f, bob);
        } else if validate_failures.contains(&s) {
            let v = ImValidateRsp::decode(body_of(&f)).unwrap();
            assert_eq!(
                (v.result_code, v.result_string.as_deref(), v.attach_data),
                (2, Some("服务端内部错误"), None),
                "unparsable validate, seq {s}"
            );
        } else {
            assert_eq!(cid_of(&f), answered[&s], "reply to seq {s}");
        }
    }
    // Nothing else is on its way: the next frame answers the next request.
    let f = r.call(&query_frame(bob, valid + 1)).await;
    assert_query_reply(&f, bob);
    // The bad frames (seq 1 .. valid - 1) and the two valid requests.
    valid as usize + 1
}

/// 10,000 heartbeats in one write, then a request: answered, heartbeats never are.
async fn heartbeat_burst(addr: SocketAddr, bob: u32) -> Duration {
    let mut r = Raw::connect(addr).await;
    let beat = frame(sid::OTHER, cid::OTHER_HEARTBEAT, 0, &[]);
    let mut burst = Vec::with_capacity(beat.len() * 10_000);
    for _ in 0..10_000 {
        burst.extend_from_slice(&beat);
    }
    let started = Instant::now();
    r.send(&burst).await;
    let f = r.call(&query_frame(bob, 77)).await;
    let took = started.elapsed();
    assert_query_reply(&f, bob);
    took
}

/// 500 connections opened at once, all accepted (the limit is 1024), none sending: each
/// closed by the idle timeout, none before it. Returns the close times, sorted.
async fn idle_crowd(addr: SocketAddr) -> Vec<Duration> {
    let mut opening = JoinSet::new();
    for _ in 0..IDLE_CONNECTIONS {
        opening.spawn(async move { (TcpStream::connect(addr).await, Instant::now()) });
    }
    let mut waiting = JoinSet::new();
    while let Some(done) = opening.join_next().await {
        let (s, opened) = done.unwrap();
        let mut s = s.expect("an idle connection was refused");
        waiting.spawn(
            async move { closed_after(&mut s, opened, IDLE + Duration::from_secs(5)).await },
        );
    }
    let mut closes = Vec::new();
    while let Some(done) = waiting.join_next().await {
        closes.push(done.unwrap().expect("an idle connection stayed open"));
    }
    closes.sort_unstable();
    closes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traffic_beside_twenty_good_connections() {
    let test_started = Instant::now();
    let env = TestEnv::new().await;
    let alice = insert_user(&env, "alice").await;
    let bob = insert_user(&env, "bob").await;
    let mut bin = Binary::start(&env, 1, "idle_timeout_ms = 3000");
    let addr = bin.addr;
    let rss_start = bin.rss_kib();

    let stop = CancellationToken::new();
    let mut good = JoinSet::new();
    for i in 0..GOOD as u32 {
        good.spawn(good_loop(addr, i, alice, bob, stop.clone()));
    }
    // Let every good connection be up and answered once before the garbage starts.
    let warm = Client::connect(addr).await.unwrap();
    let _: ImQueryPushShieldRsp = warm
        .call_decode(
            cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
            &ImQueryPushShieldReq {
                user_id: bob,
                attach_data: None,
            },
        )
        .await
        .unwrap();
    drop(warm);

    let rounds = scaled(1usize, 10);
    let mut framing_closed = 0;
    let mut garbage_frames = 0;
    let mut silences = Vec::new();
    let mut bursts = Vec::new();
    let mut crowd_closes = Vec::new();
    for round in 0..rounds {
        // The slow parts (idle timeouts) run beside the quick ones.
        let silence = tokio::spawn(header_then_silence(addr));
        let crowd = tokio::spawn(idle_crowd(addr));
        framing_closed += bad_lengths(addr, bob).await;
        half_frames_then_close(addr, bob).await;
        garbage_frames += bad_bodies(addr, bob).await;
        bursts.push(heartbeat_burst(addr, bob).await);
        silences.push(silence.await.unwrap());
        let closes = crowd.await.unwrap();
        assert_eq!(closes.len(), IDLE_CONNECTIONS, "round {round}");
        let (first, last) = (closes[0], closes[closes.len() - 1]);
        assert!(
            first >= IDLE - Duration::from_secs(1),
            "round {round}: an idle connection was closed after {first:?}, before the idle timeout"
        );
        assert!(
            last <= IDLE + Duration::from_secs(2),
            "round {round}: the last idle connection was closed after {last:?}"
        );
        crowd_closes.extend(closes);
    }

    stop.cancel();
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut per_connection = Vec::new();
    while let Some(done) = good.join_next().await {
        let r = done.unwrap();
        per_connection.push(r.latencies.len());
        latencies.extend(r.latencies);
        errors.extend(r.errors);
    }
    latencies.sort_unstable();
    let requests = latencies.len();
    let p50 = latencies[requests / 2];
    let max = latencies[requests - 1];
    let p99 = p99(latencies);
    crowd_closes.sort_unstable();
    let rss_end = bin.rss_kib();
    let log = bin.log_text();
    let count = |needle: &str| log.matches(needle).count();
    eprintln!(
        "frames: {rounds} round(s) in {:?}: good connections {requests} requests \
         (fewest on one connection {}), p50 {p50:?}, p99 {p99:?}, max {max:?}, errors {}; \
         {framing_closed} connections closed for their length, {garbage_frames} bad frames; \
         header then silence closed after {silences:?}; heartbeat bursts answered after {bursts:?}; \
         {} idle connections closed between {:?} and {:?}; RSS {rss_start} KiB at start, \
         {rss_end} KiB after",
        test_started.elapsed(),
        per_connection.iter().min().unwrap(),
        errors.len(),
        crowd_closes.len(),
        crowd_closes[0],
        crowd_closes[crowd_closes.len() - 1],
    );
    assert!(
        errors.is_empty(),
        "good connections saw errors: {errors:#?}"
    );
    assert!(
        per_connection.iter().all(|&n| n >= 10),
        "every good connection kept working: {per_connection:?}"
    );
    assert!(
        p99 < Duration::from_millis(500),
        "good connections: p99 {p99:?}"
    );
    // The server's own account: every idle close and no connection refused at the limit.
    assert_eq!(
        count("nothing received; closing idle connection"),
        rounds * (IDLE_CONNECTIONS + 1),
        "idle closes in the log"
    );
    assert_eq!(count("connection limit reached"), 0);
    assert_eq!(count("panicked"), 0);
    assert!(
        count("framing error; closing connection") >= rounds * 18,
        "framing errors in the log"
    );
    // Still alive and serving.
    assert!(bin.wait_exit(Duration::ZERO).is_none(), "db-proxy exited");
    let fresh = Client::connect(addr).await.unwrap();
    let r: ImQueryPushShieldRsp = fresh
        .call_decode(
            cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
            &ImQueryPushShieldReq {
                user_id: bob,
                attach_data: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.result_code, 0);
    // Measured on the 2-core reference VM (debug build): 27 MiB at start, 35 MiB after one
    // round, 38 MiB after ten.
    let bound_kib = 56 * 1024;
    assert!(
        rss_end < bound_kib,
        "RSS {rss_end} KiB after the garbage (bound {bound_kib} KiB)"
    );
    drop(bin);
    env.cleanup().await;
}
