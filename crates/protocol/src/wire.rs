//! Raw protobuf wire-format helpers.

use bytes::{Bytes, BytesMut};

use crate::schema::schema;
use crate::Error;

/// Maximum nesting depth of groups/messages accepted (protobuf's default recursion limit).
pub(crate) const MAX_DEPTH: u32 = 100;

/// Wire type of a field key.
pub(crate) const WT_VARINT: u8 = 0;
pub(crate) const WT_FIXED64: u8 = 1;
pub(crate) const WT_LEN: u8 = 2;
pub(crate) const WT_START_GROUP: u8 = 3;
pub(crate) const WT_END_GROUP: u8 = 4;
pub(crate) const WT_FIXED32: u8 = 5;

/// One raw field as found in a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawField {
    /// Offset of the first key byte.
    pub start: usize,
    /// Offset of the first value byte (after the key; for length-delimited: after the length).
    pub value_start: usize,
    /// Offset one past the last byte of the field.
    pub end: usize,
    pub number: u32,
    pub wire_type: u8,
    /// For varint fields: the value.
    pub varint: u64,
}

/// Reads a base-128 varint at `*pos`; `None` if truncated or longer than 10 bytes.
///
/// Not prost's `decode_varint`: that one rejects a tenth byte above 1, where the original's
/// protobuf 2.6.1 drops the bits beyond 64 and accepts the field, and the strict check must
/// accept what the original accepts.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Appends a field key (`number`, `wire_type`), prost's encoding.
pub(crate) fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    prost::encoding::encode_varint((u64::from(number) << 3) | u64::from(wire_type), out);
}

/// Appends `value` as a varint, prost's encoding.
pub(crate) fn put_varint(out: &mut Vec<u8>, value: u64) {
    prost::encoding::encode_varint(value, out);
}

/// Reads one complete field starting at `pos`. `message` names the message for errors.
pub(crate) fn read_field(buf: &[u8], pos: usize, message: &str) -> Result<RawField, Error> {
    let mut p = pos;
    let key = read_varint(buf, &mut p).ok_or_else(|| malformed(message, "truncated field key"))?;
    let key = u32::try_from(key).map_err(|_| malformed(message, "field key exceeds 32 bits"))?;
    let number = key >> 3;
    let wire_type = (key & 7) as u8;
    if number == 0 {
        return Err(malformed(message, "zero field number"));
    }
    let mut value_start = p;
    let mut varint = 0;
    match wire_type {
        WT_VARINT => {
            varint = read_varint(buf, &mut p)
                .ok_or_else(|| malformed(message, format!("truncated varint in field {number}")))?;
        }
        WT_FIXED64 => p = advance(buf, p, 8, message, number)?,
        WT_FIXED32 => p = advance(buf, p, 4, message, number)?,
        WT_LEN => {
            let len = read_varint(buf, &mut p)
                .ok_or_else(|| malformed(message, format!("truncated length in field {number}")))?;
            let len = usize::try_from(len)
                .map_err(|_| malformed(message, format!("length overflow in field {number}")))?;
            value_start = p;
            p = advance(buf, p, len, message, number)?;
        }
        WT_START_GROUP => p = skip_group(buf, p, number, message, 0)?,
        WT_END_GROUP => {
            return Err(malformed(
                message,
                format!("unexpected end-group for field {number}"),
            ))
        }
        other => {
            return Err(malformed(
                message,
                format!("invalid wire type {other} for field {number}"),
            ))
        }
    }
    Ok(RawField {
        start: pos,
        value_start,
        end: p,
        number,
        wire_type,
        varint,
    })
}

fn advance(buf: &[u8], p: usize, n: usize, message: &str, number: u32) -> Result<usize, Error> {
    match p.checked_add(n) {
        Some(end) if end <= buf.len() => Ok(end),
        _ => Err(malformed(
            message,
            format!("truncated value in field {number}"),
        )),
    }
}

/// Skips the contents of a group whose start key was already read; returns the offset after
/// the matching end-group key.
fn skip_group(
    buf: &[u8],
    mut p: usize,
    group: u32,
    message: &str,
    depth: u32,
) -> Result<usize, Error> {
    if depth >= MAX_DEPTH {
        return Err(malformed(message, "groups nested too deeply"));
    }
    loop {
        if p >= buf.len() {
            return Err(malformed(message, format!("unterminated group {group}")));
        }
        let mut q = p;
        let key = read_varint(buf, &mut q).ok_or_else(|| malformed(message, "truncated key"))?;
        if key & 7 == u64::from(WT_END_GROUP) {
            if key >> 3 == u64::from(group) {
                return Ok(q);
            }
            return Err(malformed(
                message,
                format!("mismatched end-group in group {group}"),
            ));
        }
        if key & 7 == u64::from(WT_START_GROUP) {
            let inner = u32::try_from(key >> 3).map_err(|_| malformed(message, "bad group key"))?;
            if inner == 0 {
                return Err(malformed(message, "zero field number"));
            }
            p = skip_group(buf, q, inner, message, depth + 1)?;
        } else {
            p = read_field(buf, p, message)?.end;
        }
    }
}

pub(crate) fn malformed(message: &str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        message: message.to_string(),
        reason: reason.into(),
    }
}

/// Returns the raw bytes (keys included) of every top-level field in `body` whose number the
/// message `full_name` (e.g. `IM.Message.IMMsgData`) does not declare, in their original order.
///
/// Used for the `CID_MSG_DATA` echo: the response is the re-encoded request followed by these.
pub fn unknown_fields(full_name: &str, body: &[u8]) -> Result<Bytes, Error> {
    let info = schema()?.message(full_name)?;
    let mut out = BytesMut::new();
    let mut pos = 0;
    while pos < body.len() {
        let f = read_field(body, pos, full_name)?;
        if !info.fields.contains_key(&f.number) {
            out.extend_from_slice(&body[f.start..f.end]);
        }
        pos = f.end;
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_accept_what_the_original_accepts() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        // Ten bytes whose last carries bits beyond 64: kept (high bits dropped), as the
        // original does; prost's own decoder refuses it.
        let long = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        let mut pos = 0;
        assert_eq!(read_varint(&long, &mut pos), Some(u64::MAX));
        assert!(prost::encoding::decode_varint(&mut &long[..]).is_err());
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80; 11], &mut pos),
            None,
            "more than 10 bytes"
        );
        let mut key = Vec::new();
        put_key(&mut key, 99, WT_VARINT);
        assert_eq!(key, [0x98, 0x06]);
    }
}
