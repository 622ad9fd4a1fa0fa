//! The real binary against a testkit database + private redis: answer a request, then on
//! SIGTERM send the exact 0x0702 stop notice and exit 0 within the grace.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use dbproxy_testkit::TestEnv;

use crate::common::binary::Binary;

/// docs/compatibility.md#byte-vectors: stop-receive notice.
const STOP_NOTICE: [u8; 18] = [
    0x00, 0x00, 0x00, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x07, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x00,
];

/// docs/compatibility.md#byte-vectors: validate request (seq 7, user alice, md5hex("123456"), 12-byte attach).
fn validate_request() -> Vec<u8> {
    let mut v = vec![
        0x00, 0x00, 0x00, 0x48, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x07, 0x03, 0x00, 0x07, 0x00,
        0x00,
    ];
    v.extend_from_slice(&[0x0a, 0x05]);
    v.extend_from_slice(b"alice");
    v.extend_from_slice(&[0x12, 0x20]);
    v.extend_from_slice(b"e10adc3949ba59abbe56e057f20f883e");
    v.extend_from_slice(&[
        0xa2, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
    ]);
    v
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut frame = head.to_vec();
    frame.resize(len, 0);
    s.read_exact(&mut frame[16..]).unwrap();
    frame
}

/// Both runtimes the binary picks: `threads = 1` (current-thread) and more (multi-thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_stop_notice_and_exits_zero() {
    let env = TestEnv::new().await;
    for threads in [1, 2] {
        answer_then_stop_on_sigterm(&env, threads);
    }
    env.cleanup().await;
}

/// Starts the binary with `threads`, checks one reply, sends SIGTERM, expects the stop
/// notice on the open connection and a zero exit within the grace.
fn answer_then_stop_on_sigterm(env: &TestEnv, threads: u32) {
    let mut proxy = Binary::start(env, threads, "shutdown_grace_ms = 2000");
    let mut stream = TcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // A request is answered (no such user: failure reply, seq echoed).
    stream.write_all(&validate_request()).unwrap();
    let reply = read_frame(&mut stream);
    assert_eq!(
        &reply[8..12],
        &[0x00, 0x07, 0x07, 0x04],
        "sid/cid: {reply:02x?}"
    );
    assert_eq!(&reply[12..14], &[0x00, 0x07], "seq echoed");

    proxy.signal("TERM");
    let notice = read_frame(&mut stream);
    assert_eq!(notice, STOP_NOTICE);

    let Some(status) = proxy.wait_exit(Duration::from_secs(2 + 3)) else {
        panic!("db-proxy (threads = {threads}) did not exit within the grace");
    };
    assert!(
        status.success(),
        "threads = {threads}: exit status {status}"
    );
}
