//! Business logic of db-proxy: turns each request message into its response message using
//! `dbproxy-model`. One module per command family; `Actions::handle` is the single entry
//! point where every request starts and ends (decode → run → failure mapping → encode).
//!
//! The behaviour of every handler follows `spec/behaviour.md` §7–§11, with the FIX items of
//! `spec/quirks.md` applied.

mod command;
pub mod crypto;
mod error;
pub mod lockout;

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
use dbproxy_protocol::commands::cid;

use command::{execute, Command};
use lockout::LoginGuard;

/// Settings of the action layer (mapped by the binary from its configuration file).
#[derive(Debug, Clone)]
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
}

impl Default for ActionSettings {
    fn default() -> Self {
        Self {
            aes_key: *b"12345678901234567890123456789012",
            lockout_window: Duration::from_secs(1800),
            lockout_max_failures: 10,
            lockout_max_names: 100_000,
            sync_interval: Duration::from_secs(5),
        }
    }
}

/// Shared state every handler sees.
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) settings: ActionSettings,
    pub(crate) logins: LoginGuard,
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
    C: Command + 'a,
    C::Req: Send,
    C::Rsp: Send,
{
    Box::pin(execute::<C>(ctx, body))
}

/// The request handlers of db-proxy over one [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct Actions {
    ctx: Arc<Ctx>,
}

impl Actions {
    /// Builds the handlers; computes the voice placeholder from the AES key.
    pub fn new(store: Store, settings: ActionSettings) -> Self {
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
                voice_placeholder,
                user_update_gate: AtomicU32::new(now()),
            }),
        }
    }

    /// Runs the group-session sync task (CSyncCenter, behaviour.md §6) every
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
        let handler: Handling<'_> = match command_id {
            cid::OTHER_VALIDATE_REQ => boxed::<login::Validate>(ctx, body),
            cid::LOGIN_REQ_PUSH_SHIELD => boxed::<login::SetPushShield>(ctx, body),
            cid::LOGIN_REQ_QUERY_PUSH_SHIELD => boxed::<login::QueryPushShield>(ctx, body),
            cid::BUDDY_LIST_USER_INFO_REQUEST => boxed::<buddy::UsersInfo>(ctx, body),
            cid::BUDDY_LIST_ALL_USER_REQUEST => boxed::<buddy::ChangedUsers>(ctx, body),
            cid::BUDDY_LIST_DEPARTMENT_REQUEST => boxed::<buddy::Departments>(ctx, body),
            cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST => boxed::<buddy::ChangeSignInfo>(ctx, body),
            cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST => {
                boxed::<session::RecentSessions>(ctx, body)
            }
            cid::BUDDY_LIST_REMOVE_SESSION_REQ => boxed::<session::RemoveSession>(ctx, body),
            cid::MSG_DATA => Box::pin(message::send(ctx, body)),
            cid::MSG_READ_ACK => boxed::<message::ReadAck>(ctx, body),
            cid::MSG_UNREAD_CNT_REQUEST => boxed::<message::UnreadCounts>(ctx, body),
            cid::MSG_LIST_REQUEST => boxed::<message::MessageList>(ctx, body),
            cid::MSG_GET_LATEST_MSG_ID_REQ => boxed::<message::LatestMsgId>(ctx, body),
            cid::MSG_GET_BY_MSG_ID_REQ => boxed::<message::MessagesById>(ctx, body),
            cid::GROUP_NORMAL_LIST_REQUEST => boxed::<group::NormalList>(ctx, body),
            cid::GROUP_INFO_REQUEST => boxed::<group::Info>(ctx, body),
            cid::GROUP_CREATE_REQUEST => boxed::<group::Create>(ctx, body),
            cid::GROUP_CHANGE_MEMBER_REQUEST => boxed::<group::ChangeMembers>(ctx, body),
            cid::GROUP_SHIELD_GROUP_REQUEST => boxed::<group::SetShield>(ctx, body),
            cid::OTHER_GET_SHIELD_REQ => boxed::<group::GetShield>(ctx, body),
            cid::LOGIN_REQ_DEVICETOKEN => boxed::<token::SetDeviceToken>(ctx, body),
            cid::OTHER_GET_DEVICE_TOKEN_REQ => boxed::<token::GetDeviceTokens>(ctx, body),
            cid::FILE_HAS_OFFLINE_REQ => boxed::<file::HasOffline>(ctx, body),
            cid::FILE_ADD_OFFLINE_REQ => boxed::<file::AddOffline>(ctx, body),
            cid::FILE_DEL_OFFLINE_REQ => boxed::<file::DelOffline>(ctx, body),
            other => {
                tracing::warn!(command_id = other, "no handler for command");
                return None;
            }
        };
        handler.await
    }
}
