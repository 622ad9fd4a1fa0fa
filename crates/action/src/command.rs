//! The one place where every request starts and ends: decode with the original's proto2
//! strictness, run the handler, map a failure to the documented failure reply, encode.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dbproxy_protocol::decode::decode;

use crate::{Ctx, Error};

/// Current unix time in seconds, as the original's `time(NULL)` (u32 like the columns).
pub fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// A reply body: any protobuf message, or pre-encoded bytes (the CID_MSG_DATA echo).
pub(crate) trait Reply {
    fn into_body(self) -> Bytes;
}

impl<M: prost::Message> Reply for M {
    fn into_body(self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }
}

/// One command of the protocol.
pub(crate) trait Command {
    /// Name used in logs.
    const NAME: &'static str;
    type Req: prost::Message + prost::Name + Default;
    type Rsp: Reply;

    /// Answers a decoded request. `Ok(None)`: the spec sends no reply in this case.
    fn run(
        ctx: &Ctx,
        req: Self::Req,
    ) -> impl Future<Output = Result<Option<Self::Rsp>, Error>> + Send;

    /// The reply the spec documents when the backend fails (result_code 1, msg_id 0,
    /// empty list, ...); `None` = no reply.
    fn failed(req: &Self::Req) -> Option<Self::Rsp>;

    /// The reply to a body that does not parse; only login answers one (result 2).
    fn undecodable() -> Option<Self::Rsp> {
        None
    }
}

/// Runs command `C` on `body`; the only place handler failures are logged.
pub(crate) async fn execute<C: Command>(ctx: &Ctx, body: &[u8]) -> Option<Bytes> {
    let req = match decode::<C::Req>(body) {
        Ok(req) => req,
        Err(error) => {
            tracing::warn!(command = C::NAME, %error, "request body does not parse");
            return C::undecodable().map(Reply::into_body);
        }
    };
    // Kept for the failure reply: run() consumes the request.
    let failure = C::failed(&req);
    match C::run(ctx, req).await {
        Ok(reply) => reply.map(Reply::into_body),
        Err(error) => {
            tracing::error!(command = C::NAME, %error, "request failed; sending the failure reply");
            failure.map(Reply::into_body)
        }
    }
}

/// The attach_data echo of protocol.md §5: always present in the reply, empty if absent.
pub(crate) fn attach(data: &Option<Bytes>) -> Option<Bytes> {
    Some(data.clone().unwrap_or_default())
}
