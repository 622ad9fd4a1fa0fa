//! Index of the descriptor set embedded at build time: which fields each message declares,
//! their labels and kinds, and which numbers each enum declares.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

use crate::Error;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(Schema::load);

/// How a field's value is encoded, as far as validation cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    /// string or bytes
    Len,
    /// Enum with the given full name (no leading dot).
    Enum(String),
    /// Message with the given full name (no leading dot).
    Message(String),
    Group,
}

#[derive(Debug)]
pub(crate) struct FieldInfo {
    pub name: String,
    pub required: bool,
    pub repeated: bool,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) struct MessageInfo {
    pub full_name: String,
    pub fields: HashMap<u32, FieldInfo>,
    /// Field numbers of the `required` fields, in declaration order.
    pub required: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct Schema {
    messages: HashMap<String, MessageInfo>,
    enums: HashMap<String, HashSet<i32>>,
}

/// The lazily built schema index.
pub(crate) fn schema() -> Result<&'static Schema, Error> {
    SCHEMA.as_ref().map_err(|e| Error::Descriptors(e.clone()))
}

impl Schema {
    fn load() -> Result<Schema, String> {
        let set = FileDescriptorSet::decode(DESCRIPTORS).map_err(|e| e.to_string())?;
        let mut schema = Schema {
            messages: HashMap::new(),
            enums: HashMap::new(),
        };
        for file in &set.file {
            let prefix = file.package().to_string();
            for e in &file.enum_type {
                schema.add_enum(&prefix, e);
            }
            for m in &file.message_type {
                schema.add_message(&prefix, m);
            }
        }
        Ok(schema)
    }

    fn add_enum(&mut self, prefix: &str, e: &prost_types::EnumDescriptorProto) {
        let name = join(prefix, e.name());
        let values = e.value.iter().map(|v| v.number()).collect();
        self.enums.insert(name, values);
    }

    fn add_message(&mut self, prefix: &str, m: &DescriptorProto) {
        let full_name = join(prefix, m.name());
        for e in &m.enum_type {
            self.add_enum(&full_name, e);
        }
        for nested in &m.nested_type {
            self.add_message(&full_name, nested);
        }
        let mut fields = HashMap::new();
        let mut required = Vec::new();
        for f in &m.field {
            let Ok(number) = u32::try_from(f.number()) else {
                continue;
            };
            let type_name = f.type_name().trim_start_matches('.').to_string();
            let kind = match f.r#type() {
                Type::Double | Type::Fixed64 | Type::Sfixed64 => Kind::Fixed64,
                Type::Float | Type::Fixed32 | Type::Sfixed32 => Kind::Fixed32,
                Type::Int64
                | Type::Uint64
                | Type::Int32
                | Type::Uint32
                | Type::Bool
                | Type::Sint32
                | Type::Sint64 => Kind::Varint,
                Type::String | Type::Bytes => Kind::Len,
                Type::Enum => Kind::Enum(type_name),
                Type::Message => Kind::Message(type_name),
                Type::Group => Kind::Group,
            };
            let is_required = f.label() == Label::Required;
            if is_required {
                required.push(number);
            }
            fields.insert(
                number,
                FieldInfo {
                    name: f.name().to_string(),
                    required: is_required,
                    repeated: f.label() == Label::Repeated,
                    kind,
                },
            );
        }
        self.messages.insert(
            full_name.clone(),
            MessageInfo {
                full_name,
                fields,
                required,
            },
        );
    }

    /// The message with this full name (e.g. `IM.Server.IMValidateReq`).
    pub fn message(&self, full_name: &str) -> Result<&MessageInfo, Error> {
        self.messages
            .get(full_name)
            .ok_or_else(|| Error::UnknownMessageType(full_name.to_string()))
    }

    /// Whether `value` is a declared number of the enum `full_name`.
    pub fn enum_declares(&self, full_name: &str, value: i32) -> bool {
        self.enums
            .get(full_name)
            .is_some_and(|values| values.contains(&value))
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
