//! Raw-socket helpers for byte-exact tests: hand-assembled request frames and whole reply
//! frames (header included) read straight off a `TcpStream`, without the protocol crate.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read waits for the server before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses hex written as in the spec: pairs of digits, separated by spaces or `|`.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'|')
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// A frame assembled by hand: length (header included), version 1, flag 0, service id,
/// command id, seq, reserved 0, then `body`.
pub fn frame(service_id: u16, command_id: u16, seq: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + body.len());
    v.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&service_id.to_be_bytes());
    v.extend_from_slice(&command_id.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Seq number of a whole frame.
pub fn seq_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[12], frame[13]])
}

/// Command id of a whole frame.
pub fn cid_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[10], frame[11]])
}

/// Body of a whole frame.
pub fn body_of(frame: &[u8]) -> &[u8] {
    &frame[16..]
}

/// One raw connection.
pub struct Raw {
    stream: TcpStream,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    /// Writes bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes bytes as they are; `false` when the connection is gone.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads the next whole frame (header + body) that is not a server heartbeat (0x0701).
    /// Panics on EOF or when nothing arrives within 10 s.
    pub async fn read_frame(&mut self) -> Vec<u8> {
        loop {
            let f = tokio::time::timeout(READ_TIMEOUT, self.read_one())
                .await
                .expect("timed out waiting for a reply frame")
                .expect("connection closed while waiting for a reply frame");
            if cid_of(&f) != 0x0701 {
                return f;
            }
        }
    }

    async fn read_one(&mut self) -> std::io::Result<Vec<u8>> {
        let mut head = [0u8; 16];
        self.stream.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        assert!(
            (16..=1 << 20).contains(&len),
            "server sent a bad length {len}"
        );
        let mut f = head.to_vec();
        f.resize(len, 0);
        self.stream.read_exact(&mut f[16..]).await?;
        Ok(f)
    }

    /// Sends a request frame and returns the next reply frame, which must carry `seq`.
    pub async fn call(&mut self, request: &[u8]) -> Vec<u8> {
        let seq = seq_of(request);
        self.send(request).await;
        let reply = self.read_frame().await;
        assert_eq!(
            seq_of(&reply),
            seq,
            "reply to another request: {reply:02x?}"
        );
        reply
    }

    /// Completes when the server has closed the connection (EOF or reset); any frames
    /// still arriving before that are skipped. Panics if it stays open for 10 s.
    pub async fn expect_closed(&mut self) {
        let closed = async {
            loop {
                match self.read_one().await {
                    Ok(_) => continue,
                    Err(_) => return,
                }
            }
        };
        tokio::time::timeout(READ_TIMEOUT, closed)
            .await
            .expect("server did not close the connection");
    }
}
