//! Business logic of db-proxy: turns each request message into its response message using
//! `dbproxy-model`. One module per command family; `Actions::handle` is the single entry
//! point where every request starts and ends (decode → run → failure mapping → encode).
//!
//! The behaviour of every handler follows docs/compatibility.md#command-behaviour, with the FIX items of
//! docs/compatibility.md#quirk-register applied.

mod command;
pub mod crypto;
mod error;
pub mod lockout;
pub mod metrics;

mod buddy;
mod file;
mod group;
mod login;
mod message;
mod session;
pub mod sync;
mod token;
mod voice;

pub use command::now;
pub use error::Error;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dbproxy_model::Store;

use command::{execute, Handle};
use lockout::{LoginGuard, SharedLocks};

/// Settings of the action layer (mapped by the binary from its configuration file).
#[derive(Clone, PartialEq, Eq)]
pub struct ActionSettings {
    /// The 32-byte `aesKey` shared with msg_server; used for the voice placeholder only.
    pub aes_key: [u8; 32],
    /// Login lockout window (original: 30 min).
    pub lockout_window: Duration,
    /// Failures tolerated within the window (original: 10; the 11th locks).
    pub lockout_max_failures: usize,
    /// Upper bound on user names tracked by the lockout (memory bound, Q-L02).
    pub lockout_max_names: usize,
    /// Period of the group-session sync task (original: 5 s).
    pub sync_interval: Duration,
    /// A request that takes at least this long is logged as slow (a WARN line with its
    /// command and time).
    pub slow_request: Duration,
}

/// Debug without the AES key: settings may be logged, the key must not be.
impl std::fmt::Debug for ActionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionSettings")
            .field("aes_key", &"<secret>")
            .field("lockout_window", &self.lockout_window)
            .field("lockout_max_failures", &self.lockout_max_failures)
            .field("lockout_max_names", &self.lockout_max_names)
            .field("sync_interval", &self.sync_interval)
            .field("slow_request", &self.slow_request)
            .finish()
    }
}

impl Default for ActionSettings {
    fn default() -> Self {
        Self {
            aes_key: *b"12345678901234567890123456789012",
            lockout_window: Duration::from_secs(1800),
            lockout_max_failures: 10,
            lockout_max_names: 100_000,
            sync_interval: Duration::from_secs(5),
            slow_request: Duration::from_millis(500),
        }
    }
}

/// Shared state every handler sees.
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) settings: ActionSettings,
    pub(crate) logins: LoginGuard,
    pub(crate) shared_locks: SharedLocks,
    /// `crypto::encrypt(aesKey, "[语音]")`, computed once.
    pub(crate) voice_placeholder: Bytes,
    /// Last user-profile change seen by this process (start time, raised by signature
    /// changes); one half of the changed-users gate (Q-Y02).
    pub(crate) user_update_gate: AtomicU32,
}

/// The future of one command's handler.
type Handling<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Bytes>> + Send + 'a>>;

/// Command `C` on `body`, boxed (see [`Actions::handle`]).
fn boxed<'a, C>(ctx: &'a Ctx, body: &'a [u8]) -> Handling<'a>
where
    C: Handle,
    C::Request: Send,
    C::Response: Send,
{
    Box::pin(execute::<C>(ctx, body))
}

/// Expands the protocol's command list into the dispatch: one arm per command, each
/// running that command's [`Handle`] impl (a command of the list without one does not
/// compile).
macro_rules! dispatch_table {
    ($( $marker:ident { $($entry:tt)* } )*) => {
        /// The handler of `command_id` on `body`; `None` for an id outside the list.
        fn dispatch<'a>(ctx: &'a Ctx, command_id: u16, body: &'a [u8]) -> Option<Handling<'a>> {
            use dbproxy_protocol::{cmd, Command as _};
            Some(match command_id {
                $( <cmd::$marker>::ID => boxed::<cmd::$marker>(ctx, body), )*
                _ => return None,
            })
        }
    };
}

dbproxy_protocol::for_each_command!(dispatch_table);

/// The request handlers of db-proxy over one [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct Actions {
    ctx: Arc<Ctx>,
}

impl Actions {
    /// Builds the handlers; computes the voice placeholder from the AES key.
    pub fn new(store: Store, settings: ActionSettings) -> Self {
        metrics::register_series();
        let voice_placeholder = Bytes::from(crypto::encrypt(
            &settings.aes_key,
            crypto::VOICE_PLACEHOLDER_TEXT.as_bytes(),
        ));
        let logins = LoginGuard::new(
            settings.lockout_window,
            settings.lockout_max_failures,
            settings.lockout_max_names,
        );
        Self {
            ctx: Arc::new(Ctx {
                store,
                settings,
                logins,
                shared_locks: SharedLocks::default(),
                voice_placeholder,
                user_update_gate: AtomicU32::new(now()),
            }),
        }
    }

    /// Runs the group-session sync task (CSyncCenter, docs/compatibility.md#group-session-sync) every
    /// `settings.sync_interval` until `shutdown` is cancelled; spawn it next to the server.
    pub async fn run_group_sync(&self, shutdown: tokio_util::sync::CancellationToken) {
        sync::run_group_sync(
            self.ctx.store.clone(),
            self.ctx.settings.sync_interval,
            shutdown,
        )
        .await;
    }

    /// Handles one request body for `command_id`; `None` means "send no reply".
    ///
    /// Heartbeats and unknown commands are the transport's business; an id without a
    /// handler here is logged and answered with nothing.
    pub async fn handle(&self, command_id: u16, body: Bytes) -> Option<Bytes> {
        let ctx = &*self.ctx;
        let body = &body;
        // Each command's future is boxed: a request in flight then holds only the state of
        // its own command, not the largest of them all.
        let Some(handler) = dispatch(ctx, command_id, body) else {
            tracing::warn!(command_id, "no handler for command");
            return None;
        };
        handler.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatch answers exactly the ids of the protocol's command table: nothing in the
    /// table lacks a handler, nothing is handled that the table does not list.
    #[tokio::test]
    async fn dispatch_covers_exactly_the_command_table() {
        let env = dbproxy_testkit::TestEnv::new().await;
        let actions = Actions::new(env.store.clone(), ActionSettings::default());
        let ctx = &*actions.ctx;
        let mut handled = 0;
        for id in 0..=u16::MAX {
            // Building a handler's future runs nothing: no backend is touched.
            let dispatched = dispatch(ctx, id, &[]).is_some();
            let listed = dbproxy_protocol::lookup(id).is_some();
            assert_eq!(dispatched, listed, "command id {id:#06x}");
            handled += usize::from(dispatched);
        }
        assert_eq!(handled, dbproxy_protocol::COMMANDS.len());
        drop(actions);
        env.cleanup().await;
    }
}
