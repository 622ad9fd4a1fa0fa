//! The 16-byte PDU header and the tokio-util codec (docs/compatibility.md#pdu-framing).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::commands::{cid, sid};
use crate::Error;

/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 16;
/// Default upper bound for a frame's total length (header included): 4 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024 * 1024;
/// Protocol version written on send.
pub const VERSION: u16 = 1;

/// One protocol data unit: header fields that matter plus the (protobuf) body.
///
/// `version`, `flag` and `reserved` are written as 1/0/0 and ignored on receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// Service id (informational; the server dispatches by command id only).
    pub service_id: u16,
    /// Command id.
    pub command_id: u16,
    /// Peer-chosen sequence number, echoed in responses.
    pub seq_num: u16,
    /// Serialized protobuf body; may be empty.
    pub body: Bytes,
}

impl Pdu {
    /// Builds a PDU.
    pub fn new(service_id: u16, command_id: u16, seq_num: u16, body: impl Into<Bytes>) -> Self {
        Pdu {
            service_id,
            command_id,
            seq_num,
            body: body.into(),
        }
    }

    /// The heartbeat: SID 7, CID 0x0701, seq 0, empty body.
    pub fn heartbeat() -> Self {
        Pdu::new(sid::OTHER, cid::OTHER_HEARTBEAT, 0, Bytes::new())
    }

    /// The stop-receive notice: SID 7, CID 0x0702, seq 0, body `IMStopReceivePacket{result=0}`.
    pub fn stop_receive() -> Self {
        Pdu::new(
            sid::OTHER,
            cid::OTHER_STOP_RECV_PACKET,
            0,
            Bytes::from_static(&[0x08, 0x00]),
        )
    }

    /// Total encoded length (header + body).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Appends the encoded PDU to `dst` without any length check.
    pub fn write_to(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_u32(self.encoded_len() as u32);
        dst.put_u16(VERSION);
        dst.put_u16(0);
        dst.put_u16(self.service_id);
        dst.put_u16(self.command_id);
        dst.put_u16(self.seq_num);
        dst.put_u16(0);
        dst.put_slice(&self.body);
    }

    /// Encodes into a fresh buffer (no length check).
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.write_to(&mut b);
        b.freeze()
    }
}

/// Framing codec: first u32 BE is the TOTAL length including the 16-byte header.
///
/// Lengths below 16 (including 0) and above `max_frame_len` are rejected with a typed error
/// before any memory is reserved for the frame. Split and coalesced frames are reassembled.
#[derive(Debug, Clone, Copy)]
pub struct PduCodec {
    max_frame_len: usize,
}

impl PduCodec {
    /// A codec accepting frames of at most `max_frame_len` bytes (header included).
    pub fn new(max_frame_len: usize) -> Self {
        PduCodec {
            max_frame_len: max_frame_len.max(HEADER_LEN),
        }
    }

    /// The configured maximum total frame length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Default for PduCodec {
    fn default() -> Self {
        PduCodec::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl Decoder for PduCodec {
    type Item = Pdu;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        if (length as usize) < HEADER_LEN {
            return Err(Error::FrameTooShort { length });
        }
        if length as usize > self.max_frame_len {
            return Err(Error::FrameTooLong {
                length: u64::from(length),
                max: self.max_frame_len,
            });
        }
        let length = length as usize;
        if src.len() < length {
            // Length is within bounds now, so reserving the rest is safe.
            src.reserve(length - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(length);
        frame.advance(4);
        let _version = frame.get_u16();
        let _flag = frame.get_u16();
        let service_id = frame.get_u16();
        let command_id = frame.get_u16();
        let seq_num = frame.get_u16();
        let _reserved = frame.get_u16();
        Ok(Some(Pdu {
            service_id,
            command_id,
            seq_num,
            body: frame.freeze(),
        }))
    }
}

impl Encoder<Pdu> for PduCodec {
    type Error = Error;

    fn encode(&mut self, item: Pdu, dst: &mut BytesMut) -> Result<(), Error> {
        let len = item.encoded_len();
        if len > self.max_frame_len || len > u32::MAX as usize {
            return Err(Error::FrameTooLong {
                length: len as u64,
                max: self.max_frame_len,
            });
        }
        item.write_to(dst);
        Ok(())
    }
}

impl Encoder<&Pdu> for PduCodec {
    type Error = Error;

    fn encode(&mut self, item: &Pdu, dst: &mut BytesMut) -> Result<(), Error> {
        let len = item.encoded_len();
        if len > self.max_frame_len || len > u32::MAX as usize {
            return Err(Error::FrameTooLong {
                length: len as u64,
                max: self.max_frame_len,
            });
        }
        item.write_to(dst);
        Ok(())
    }
}
