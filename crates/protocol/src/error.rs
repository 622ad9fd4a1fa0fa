//! The single error type of the protocol crate.

/// Everything that can go wrong while framing, decoding or talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O error on the underlying socket.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame announced a total length below the 16-byte header (includes 0).
    #[error("frame length {length} is shorter than the 16-byte header")]
    FrameTooShort {
        /// The announced total length.
        length: u32,
    },
    /// A frame announced a total length above the configured maximum.
    #[error("frame length {length} exceeds the maximum of {max} bytes")]
    FrameTooLong {
        /// The announced (or, on encode, the computed) total length.
        length: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The body is not valid protobuf wire data for the message.
    #[error("malformed {message}: {reason}")]
    Malformed {
        /// Full protobuf name of the message being parsed.
        message: String,
        /// What was wrong.
        reason: String,
    },
    /// A `required` field is absent (proto2 rule).
    #[error("{message}: required field `{field}` is missing")]
    MissingRequired {
        /// Full protobuf name of the message (the nested one, if nested).
        message: String,
        /// Field name.
        field: String,
    },
    /// A `required` enum field carries a number its enum does not declare.
    #[error("{message}: required enum field `{field}` has undeclared value {value}")]
    InvalidRequiredEnum {
        /// Full protobuf name of the message.
        message: String,
        /// Field name.
        field: String,
        /// The number received.
        value: u64,
    },
    /// prost rejected the (already checked) body.
    #[error("decoding {message}: {source}")]
    Decode {
        /// Full protobuf name of the message.
        message: String,
        /// The prost error.
        #[source]
        source: prost::DecodeError,
    },
    /// The message type is not in the embedded descriptor set.
    #[error("message type {0} is not in the descriptor set")]
    UnknownMessageType(String),
    /// The embedded descriptor set could not be loaded (build problem).
    #[error("descriptor set unusable: {0}")]
    Descriptors(String),
    /// No response arrived for a request within the client's timeout.
    #[error("timed out waiting for the response to command {command_id:#06x} (seq {seq_num})")]
    Timeout {
        /// Request command id.
        command_id: u16,
        /// Request seq_num.
        seq_num: u16,
    },
    /// The connection closed (or the client was shut down) before the response arrived.
    #[error("connection closed")]
    ConnectionClosed,
    /// `Client::call` was used for a command that never gets a response.
    #[error("command {0:#06x} has no response; use send()")]
    NoResponse(u16),
    /// The response arrived but carried an unexpected command id.
    #[error("expected response command {expected:#06x}, got {got:#06x}")]
    UnexpectedResponse {
        /// The command id the table says the response has.
        expected: u16,
        /// The command id that arrived.
        got: u16,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
