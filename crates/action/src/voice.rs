//! Voice messages (docs/compatibility.md#voice-messages-and-the-aes-placeholder) as the message handlers need them: the model stores
//! the payload in msfs + IMAudio and expands it back; this module adds the logging and
//! the "nothing stored → msg_id 0" decision (Q-M02).

use bytes::Bytes;
use dbproxy_model::audio::VoiceExpansion;

use crate::Ctx;

/// Stores a voice payload (`u32 BE duration` + audio bytes) and returns the message content
/// to store (the decimal IMAudio id), or `None` when nothing could be stored (≤ 4 bytes,
/// msfs or IMAudio failure); the caller then replies msg_id 0.
pub(crate) async fn store(
    ctx: &Ctx,
    from: u32,
    to: u32,
    created: u32,
    msg_data: &[u8],
) -> Option<Vec<u8>> {
    match ctx
        .store
        .audio()
        .store_voice(from, to, msg_data, created)
        .await
    {
        Ok(Some(id)) => Some(id.to_string().into_bytes()),
        Ok(None) => {
            tracing::warn!(
                from,
                to,
                len = msg_data.len(),
                "voice message too short; not stored"
            );
            None
        }
        Err(error) => {
            tracing::error!(%error, from, to, "voice payload not stored");
            None
        }
    }
}

/// The `msg_data` of a stored voice message in a list reply: duration + audio bytes when
/// IMAudio and msfs deliver them, else the stored content unchanged; `None` drops the
/// message (the IMAudio lookup failed, Q-M11).
pub(crate) async fn expand(ctx: &Ctx, content: Vec<u8>) -> Option<Bytes> {
    match ctx.store.audio().expand_voice(&content).await {
        VoiceExpansion::Data(data) => Some(Bytes::from(data)),
        VoiceExpansion::Unchanged => Some(Bytes::from(content)),
        VoiceExpansion::Remove => None,
    }
}
