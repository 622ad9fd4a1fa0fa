//! Properties of the codec and the strict decoder over generated input (proptest): what is
//! encoded decodes to the same PDUs however the bytes are cut, and no input makes the frame
//! decoder or the strict check panic.

use bytes::{Bytes, BytesMut};
use dbproxy_protocol::{commands::COMMANDS, decode, Pdu, PduCodec, HEADER_LEN};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn pdu() -> impl Strategy<Value = Pdu> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(s, c, q, body)| Pdu::new(s, c, q, Bytes::from(body)))
}

proptest! {
    #[test]
    fn frames_round_trip_whatever_the_cuts(
        pdus in proptest::collection::vec(pdu(), 1..8),
        cuts in proptest::collection::vec(1usize..64, 1..40),
    ) {
        let mut wire = BytesMut::new();
        let mut codec = PduCodec::default();
        for p in &pdus {
            codec.encode(p.clone(), &mut wire).unwrap();
        }
        // Feed the bytes in pieces of the generated sizes.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &wire[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            i += 1;
            while let Some(p) = codec.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        prop_assert_eq!(got, pdus);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn any_bytes_give_frames_or_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut codec = PduCodec::new(128);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(p)) = codec.decode(&mut buf) {
            prop_assert!(p.encoded_len() <= 128 && p.encoded_len() >= HEADER_LEN);
        }
    }

    #[test]
    fn the_strict_check_never_panics(
        index in 0..COMMANDS.len(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let name = COMMANDS[index].request_type();
        let _ = decode::validate(&name, &body);
    }
}
