//! proto2-strict decoding, as the original's protobuf-lite 2.6.1 applies it
//! (docs/compatibility.md#request-processing-and-strict-decoding).
//!
//! Rules: malformed wire data or a zero tag fails; a missing `required` field fails (checked
//! recursively in every nested message present); a `required` enum carrying an undeclared
//! number fails; an `optional` (or repeated) enum element carrying an undeclared number is
//! dropped, so the field reads as unset/default. Fields whose wire type does not match their
//! declaration are treated as unknown (as protobuf does). Packed and unpacked repeated scalars
//! are both accepted. Unknown fields are skipped.

use crate::schema::{schema, Kind, MessageInfo, Schema};
use crate::wire::{
    malformed, put_key, put_varint, read_field, read_varint, RawField, MAX_DEPTH, WT_FIXED32,
    WT_FIXED64, WT_LEN, WT_START_GROUP, WT_VARINT,
};
use crate::Error;

/// Decodes `body` as `M` with the original's proto2 strictness.
pub fn decode<M: prost::Message + prost::Name + Default>(body: &[u8]) -> Result<M, Error> {
    let full_name = M::full_name();
    let schema = schema()?;
    let info = schema.message(&full_name)?;
    let cleaned = check(schema, info, body, 0)?;
    let bytes = cleaned.as_deref().unwrap_or(body);
    M::decode(bytes).map_err(|source| Error::Decode {
        message: full_name,
        source,
    })
}

/// Checks `body` against the rules for the message `full_name` without building it.
pub fn validate(full_name: &str, body: &[u8]) -> Result<(), Error> {
    let schema = schema()?;
    let info = schema.message(full_name)?;
    check(schema, info, body, 0).map(|_| ())
}

enum Action {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// Validates one message. Returns `Some(bytes)` when fields had to be dropped or rewritten
/// (prost must then decode those bytes instead), `None` when `body` can be decoded as is.
fn check(
    schema: &Schema,
    info: &MessageInfo,
    body: &[u8],
    depth: u32,
) -> Result<Option<Vec<u8>>, Error> {
    if depth > MAX_DEPTH {
        return Err(malformed(&info.full_name, "messages nested too deeply"));
    }
    let name = info.full_name.as_str();
    let mut out: Option<Vec<u8>> = None;
    let mut seen: Vec<u32> = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let f = read_field(body, pos, name)?;
        pos = f.end;
        let action = match info.fields.get(&f.number) {
            None => Action::Drop,
            Some(field) => {
                let (action, present) = check_field(schema, info, field, &f, body, depth)?;
                if present && field.required && !seen.contains(&f.number) {
                    seen.push(f.number);
                }
                action
            }
        };
        match action {
            Action::Keep => {
                if let Some(o) = out.as_mut() {
                    o.extend_from_slice(&body[f.start..f.end]);
                }
            }
            Action::Drop => {
                out.get_or_insert_with(|| body[..f.start].to_vec());
            }
            Action::Replace(bytes) => {
                out.get_or_insert_with(|| body[..f.start].to_vec())
                    .extend_from_slice(&bytes);
            }
        }
    }
    for number in &info.required {
        if !seen.contains(number) {
            let field = info
                .fields
                .get(number)
                .map_or_else(|| number.to_string(), |f| f.name.clone());
            return Err(Error::MissingRequired {
                message: name.to_string(),
                field,
            });
        }
    }
    Ok(out)
}

/// Decides what to do with one declared field; the bool says whether it counts as present.
fn check_field(
    schema: &Schema,
    info: &MessageInfo,
    field: &crate::schema::FieldInfo,
    f: &RawField,
    body: &[u8],
    depth: u32,
) -> Result<(Action, bool), Error> {
    let name = info.full_name.as_str();
    let value = &body[f.value_start..f.end];
    let scalar_wire = |kind: &Kind| match kind {
        Kind::Varint | Kind::Enum(_) => Some(WT_VARINT),
        Kind::Fixed64 => Some(WT_FIXED64),
        Kind::Fixed32 => Some(WT_FIXED32),
        _ => None,
    };
    Ok(match (&field.kind, f.wire_type) {
        (Kind::Varint, WT_VARINT)
        | (Kind::Fixed64, WT_FIXED64)
        | (Kind::Fixed32, WT_FIXED32)
        | (Kind::Len, WT_LEN)
        | (Kind::Group, WT_START_GROUP) => (Action::Keep, true),
        (Kind::Enum(e), WT_VARINT) => {
            // protobuf reads enums as int32: the low 32 bits of the varint.
            if schema.enum_declares(e, f.varint as u32 as i32) {
                (Action::Keep, true)
            } else if field.required {
                return Err(Error::InvalidRequiredEnum {
                    message: name.to_string(),
                    field: field.name.clone(),
                    value: f.varint,
                });
            } else {
                (Action::Drop, false)
            }
        }
        (Kind::Enum(e), WT_LEN) if field.repeated => {
            // Packed enum: keep declared values only, re-emitted unpacked.
            let mut p = 0;
            let mut kept = Vec::new();
            let mut all_valid = true;
            while p < value.len() {
                let v = read_varint(value, &mut p).ok_or_else(|| {
                    malformed(name, format!("bad packed varint in field {}", field.name))
                })?;
                if schema.enum_declares(e, v as u32 as i32) {
                    put_key(&mut kept, f.number, WT_VARINT);
                    put_varint(&mut kept, v);
                } else {
                    all_valid = false;
                }
            }
            if all_valid {
                (Action::Keep, true)
            } else {
                (Action::Replace(kept), true)
            }
        }
        (kind, WT_LEN) if field.repeated && scalar_wire(kind).is_some() => {
            // Packed scalars: the payload must be a whole number of elements.
            let ok = match scalar_wire(kind) {
                Some(WT_FIXED64) => value.len().is_multiple_of(8),
                Some(WT_FIXED32) => value.len().is_multiple_of(4),
                _ => {
                    let mut p = 0;
                    let mut ok = true;
                    while p < value.len() {
                        if read_varint(value, &mut p).is_none() {
                            ok = false;
                            break;
                        }
                    }
                    ok
                }
            };
            if !ok {
                return Err(malformed(
                    name,
                    format!("bad packed payload in field {}", field.name),
                ));
            }
            (Action::Keep, true)
        }
        (Kind::Message(m), WT_LEN) => {
            let nested = schema.message(m)?;
            match check(schema, nested, value, depth + 1)? {
                None => (Action::Keep, true),
                Some(inner) => {
                    let mut bytes = Vec::with_capacity(inner.len() + 8);
                    put_key(&mut bytes, f.number, WT_LEN);
                    put_varint(&mut bytes, inner.len() as u64);
                    bytes.extend_from_slice(&inner);
                    (Action::Replace(bytes), true)
                }
            }
        }
        // Wire type does not match the declaration: protobuf keeps it as an unknown field.
        _ => (Action::Drop, false),
    })
}
