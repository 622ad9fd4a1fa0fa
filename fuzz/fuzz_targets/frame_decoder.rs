//! The frame decoder on arbitrary bytes, as a peer may send them: every call returns a frame,
//! "need more" or a typed error; no panic, and a frame never exceeds the limit.
#![no_main]

use bytes::BytesMut;
use dbproxy_protocol::{PduCodec, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the input arrives: whole, or in pieces of 1..=64 bytes.
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split % 65);
    let mut codec = PduCodec::new(64 * 1024);
    let mut buf = BytesMut::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = if piece == 0 { rest.len() } else { piece.min(rest.len()) };
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(pdu)) => {
                    let len = pdu.encoded_len();
                    assert!((HEADER_LEN..=64 * 1024).contains(&len));
                }
                Ok(None) => break,
                // The transport closes the connection here.
                Err(_) => return,
            }
        }
    }
});
