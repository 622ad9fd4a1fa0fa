//! Framing: round trips, split and coalesced frames, bad lengths.

use bytes::{BufMut, Bytes, BytesMut};
use dbproxy_protocol::{Error, Pdu, PduCodec, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
use tokio_util::codec::{Decoder, Encoder};

fn sample(n: u16) -> Pdu {
    Pdu::new(3, 0x0301, n, Bytes::from(vec![n as u8; n as usize]))
}

fn encode_all(pdus: &[Pdu]) -> BytesMut {
    let mut buf = BytesMut::new();
    let mut codec = PduCodec::default();
    for p in pdus {
        codec.encode(p.clone(), &mut buf).unwrap();
    }
    buf
}

#[test]
fn constants() {
    assert_eq!(HEADER_LEN, 16);
    assert_eq!(DEFAULT_MAX_FRAME_LEN, 4 * 1024 * 1024);
}

#[test]
fn round_trip() {
    for n in [0u16, 1, 2, 100, 5000] {
        let mut buf = encode_all(&[sample(n)]);
        assert_eq!(buf.len(), 16 + n as usize);
        let got = PduCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(got, sample(n));
        assert!(buf.is_empty());
    }
}

#[test]
fn version_flag_reserved_written_and_ignored() {
    let buf = encode_all(&[Pdu::new(1, 2, 3, Bytes::new())]);
    assert_eq!(&buf[4..8], &[0, 1, 0, 0]);
    assert_eq!(&buf[14..16], &[0, 0]);
    let mut odd = buf.clone();
    odd[4] = 9; // version
    odd[7] = 9; // flag
    odd[15] = 9; // reserved
    let got = PduCodec::default().decode(&mut odd).unwrap().unwrap();
    assert_eq!(got, Pdu::new(1, 2, 3, Bytes::new()));
}

#[test]
fn split_frames_byte_by_byte() {
    let pdus = [sample(0), sample(7), sample(300)];
    let all = encode_all(&pdus);
    let mut codec = PduCodec::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in all.iter() {
        buf.put_u8(*b);
        while let Some(p) = codec.decode(&mut buf).unwrap() {
            got.push(p);
        }
    }
    assert_eq!(got, pdus);
}

#[test]
fn coalesced_frames() {
    let pdus: Vec<Pdu> = (0..50).map(sample).collect();
    let mut buf = encode_all(&pdus);
    let mut codec = PduCodec::default();
    let mut got = Vec::new();
    while let Some(p) = codec.decode(&mut buf).unwrap() {
        got.push(p);
    }
    assert_eq!(got, pdus);
    assert!(buf.is_empty());
}

#[test]
fn incomplete_frame_waits() {
    let mut buf = encode_all(&[sample(10)]);
    buf.truncate(20);
    assert!(PduCodec::default().decode(&mut buf).unwrap().is_none());
    assert_eq!(buf.len(), 20);
    let mut tiny = BytesMut::from(&[0u8, 0, 0][..]);
    assert!(PduCodec::default().decode(&mut tiny).unwrap().is_none());
}

#[test]
fn length_zero_and_below_header_rejected() {
    for len in 0u32..16 {
        let mut buf = BytesMut::new();
        buf.put_u32(len);
        // Even with only the length prefix buffered the error is immediate.
        match PduCodec::default().decode(&mut buf) {
            Err(Error::FrameTooShort { length }) => assert_eq!(length, len),
            other => panic!("len {len}: {other:?}"),
        }
        let mut full = BytesMut::new();
        full.put_u32(len);
        full.put_slice(&[0u8; 40]);
        assert!(matches!(
            PduCodec::default().decode(&mut full),
            Err(Error::FrameTooShort { .. })
        ));
    }
}

#[test]
fn length_above_max_rejected_without_reserving() {
    let mut codec = PduCodec::new(1024);
    let mut buf = BytesMut::new();
    buf.put_u32(1025);
    let cap = buf.capacity();
    match codec.decode(&mut buf) {
        Err(Error::FrameTooLong { length, max }) => assert_eq!((length, max), (1025, 1024)),
        other => panic!("{other:?}"),
    }
    assert_eq!(buf.capacity(), cap);
    let mut huge = BytesMut::new();
    huge.put_u32(u32::MAX);
    assert!(matches!(
        PduCodec::default().decode(&mut huge),
        Err(Error::FrameTooLong { .. })
    ));
    // Exactly max is fine.
    let mut ok = BytesMut::new();
    ok.put_u32(1024);
    ok.put_slice(&[0u8; 1020]);
    assert_eq!(codec.decode(&mut ok).unwrap().unwrap().body.len(), 1008);
}

#[test]
fn encode_rejects_oversized() {
    let mut codec = PduCodec::new(100);
    let mut buf = BytesMut::new();
    let big = Pdu::new(3, 0x0301, 1, Bytes::from(vec![0u8; 85]));
    assert!(matches!(
        codec.encode(big, &mut buf),
        Err(Error::FrameTooLong { .. })
    ));
    assert!(buf.is_empty());
}
