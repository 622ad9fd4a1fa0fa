//! The one place where every request starts and ends: decode with the original's proto2
//! strictness, run the handler, map a failure to the documented failure reply, encode.

use std::future::Future;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dbproxy_protocol::commands::encode_reply;
use dbproxy_protocol::decode::decode;
use dbproxy_protocol::Command as ProtocolCommand;

use crate::{Ctx, Error};

/// Current unix time in seconds, as the original's `time(NULL)` (u32 like the columns).
pub fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// How db-proxy answers one command of the protocol's list (a marker of
/// `dbproxy_protocol::cmd`): its request and reply types come from the list.
pub(crate) trait Handle: ProtocolCommand {
    /// Answers a decoded request. `Ok(None)`: the command sends no reply in this case.
    fn run(
        ctx: &Ctx,
        req: Self::Request,
    ) -> impl Future<Output = Result<Option<Self::Response>, Error>> + Send;

    /// The reply the command gives when the backend fails (result_code 1, msg_id 0,
    /// empty list, ...); `None` = no reply.
    fn failed(req: &Self::Request) -> Option<Self::Response>;

    /// The reply to a body that does not parse; only login answers one (result 2).
    fn undecodable() -> Option<Self::Response> {
        None
    }
}

/// Runs command `C` on `body`; the only place handler failures are logged.
pub(crate) async fn execute<C: Handle>(ctx: &Ctx, body: &[u8]) -> Option<Bytes> {
    let started = Instant::now();
    let req = match decode::<C::Request>(body) {
        Ok(req) => req,
        Err(error) => {
            tracing::warn!(command = C::NAME, %error, "request body does not parse");
            count::<C>(Outcome::Undecodable, started);
            return C::undecodable().map(|r| encode_reply::<C>(body, &r));
        }
    };
    // Kept for the failure reply: run() consumes the request.
    let failure = C::failed(&req);
    let (ran, steps) = dbproxy_model::stages::recorded(C::run(ctx, req)).await;
    let (reply, outcome) = match ran {
        Ok(Some(reply)) => (Some(reply), Outcome::Ok),
        Ok(None) => (None, Outcome::NoReply),
        Err(error) if error.is_known_outage() => {
            // The model logs the outage once and then in summaries, not per request.
            tracing::debug!(command = C::NAME, %error, "backend down; sending the failure reply");
            (failure, Outcome::Failure)
        }
        Err(error) => {
            tracing::error!(command = C::NAME, %error, "request failed; sending the failure reply");
            (failure, Outcome::Failure)
        }
    };
    let outcome = if reply.is_none() {
        Outcome::NoReply
    } else {
        outcome
    };
    count::<C>(outcome, started);
    let elapsed = started.elapsed();
    if elapsed >= ctx.settings.slow_request {
        tracing::warn!(
            command = C::NAME,
            elapsed_ms = elapsed.as_millis() as u64,
            outcome = outcome.label(),
            steps = %dbproxy_model::stages::describe(&steps),
            "slow request"
        );
    }
    reply.map(|r| encode_reply::<C>(body, &r))
}

/// How a request ended, as counted in [`crate::metrics::REQUESTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok = 0,
    Failure = 1,
    NoReply = 2,
    Undecodable = 3,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failure => "failure",
            Outcome::NoReply => "no_reply",
            Outcome::Undecodable => "undecodable",
        }
    }
}

fn count<C: Handle>(outcome: Outcome, started: Instant) {
    let Some(h) = handles().get(C::NAME) else {
        return;
    };
    h.outcomes[outcome as usize].increment(1);
    h.seconds.record(started.elapsed().as_secs_f64());
}

/// The metric handles of one command, looked up in the recorder once (the recorder is
/// installed before the first request).
struct CommandMetrics {
    /// By [`Outcome`] as index.
    outcomes: [metrics::Counter; 4],
    seconds: metrics::Histogram,
}

fn handles() -> &'static std::collections::HashMap<&'static str, CommandMetrics> {
    static HANDLES: std::sync::OnceLock<std::collections::HashMap<&'static str, CommandMetrics>> =
        std::sync::OnceLock::new();
    HANDLES.get_or_init(|| {
        dbproxy_protocol::COMMANDS
            .iter()
            .map(|c| {
                let name = c.name;
                let counter = |o: Outcome| {
                    metrics::counter!(crate::metrics::REQUESTS, "command" => name, "outcome" => o.label())
                };
                let metrics = CommandMetrics {
                    outcomes: [
                        counter(Outcome::Ok),
                        counter(Outcome::Failure),
                        counter(Outcome::NoReply),
                        counter(Outcome::Undecodable),
                    ],
                    seconds: metrics::histogram!(crate::metrics::REQUEST_SECONDS, "command" => name),
                };
                (name, metrics)
            })
            .collect()
    })
}

/// The attach_data echo of docs/compatibility.md#reply-construction-and-attach-data: always present in the reply, empty if absent.
pub(crate) fn attach(data: &Option<Bytes>) -> Option<Bytes> {
    Some(data.clone().unwrap_or_default())
}
