//! Voice messages: IMAudio metadata + the msfs payload store (docs/compatibility.md#voice-messages-and-the-aes-placeholder; Q-S04,
//! Q-M02, Q-M11).
//!
//! Reads/writes table `IMAudio` (fromId, toId, path, size, duration, created) and calls
//! msfs over HTTP ([`MsfsClient`]).

use diesel::sql_types::{Integer, Nullable, Text, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::db::sql::{last_insert_id, CacheExt};
use crate::db::DbPool;
use crate::error::{MysqlResultExt, Result};
use crate::msfs::MsfsClient;

/// One IMAudio row (NULL path read as empty, Q-D03).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub id: u32,
    pub from_id: u32,
    /// Receiver user id or group id.
    pub to_id: u32,
    /// Download URL returned by msfs.
    pub path: String,
    /// Payload size in bytes (without the 4-byte duration prefix).
    pub size: u32,
    pub duration: u32,
    pub created: u32,
}

/// An IMAudio row to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewAudio<'a> {
    pub from_id: u32,
    pub to_id: u32,
    pub path: &'a str,
    pub size: u32,
    pub duration: u32,
    pub created: u32,
}

#[derive(QueryableByName)]
struct AudioRow {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "fromId")]
    from_id: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    #[diesel(column_name = "toId")]
    to_id: u32,
    #[diesel(sql_type = Nullable<Text>)]
    path: Option<String>,
    #[diesel(sql_type = Unsigned<Integer>)]
    size: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    duration: u32,
    #[diesel(sql_type = Unsigned<Integer>)]
    created: u32,
}

/// Split voice `msg_data` into (duration, payload): first 4 bytes = duration (u32 BE).
/// `None` when the data is not longer than 4 bytes (nothing is stored then, Q-M02).
pub fn split_voice(data: &[u8]) -> Option<(u32, &[u8])> {
    if data.len() <= 4 {
        return None;
    }
    let (d, payload) = data.split_at(4);
    Some((u32::from_be_bytes([d[0], d[1], d[2], d[3]]), payload))
}

/// Message content of a stored voice message → IMAudio id. Strict decimal (Q-S04: the
/// content is never pasted into SQL); `None` for anything else.
pub fn parse_audio_id(content: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(content).ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Insert an IMAudio row (bound parameters) → new id.
pub(crate) async fn insert(pool: &mut DbPool<'_>, a: &NewAudio<'_>) -> Result<u32> {
    pool.run(async |c| {
        diesel::sql_query(
            "INSERT INTO IMAudio (fromId, toId, path, size, duration, created) \
                     VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind::<Unsigned<Integer>, _>(a.from_id)
        .bind::<Unsigned<Integer>, _>(a.to_id)
        .bind::<Text, _>(a.path)
        .bind::<Unsigned<Integer>, _>(a.size)
        .bind::<Unsigned<Integer>, _>(a.duration)
        .bind::<Unsigned<Integer>, _>(a.created)
        .cached()
        .execute(c)
        .await
        .ctx("IMAudio insert")?;
        last_insert_id(c).await
    })
    .await
}

/// IMAudio row by id; `None` when missing.
pub(crate) async fn get(pool: &mut DbPool<'_>, id: u32) -> Result<Option<Audio>> {
    let rows: Vec<AudioRow> = pool
        .run(async |c| {
            diesel::sql_query(
                "SELECT id, fromId, toId, path, size, duration, created FROM IMAudio \
                     WHERE id = ?",
            )
            .bind::<Unsigned<Integer>, _>(id)
            .cached()
            .load(c)
            .await
            .ctx("IMAudio get")
        })
        .await?;
    Ok(rows.into_iter().next().map(|r| Audio {
        id: u32::try_from(r.id).unwrap_or(0),
        from_id: r.from_id,
        to_id: r.to_id,
        path: r.path.unwrap_or_default(),
        size: r.size,
        duration: r.duration,
        created: r.created,
    }))
}

/// Voice store path (docs/compatibility.md#voice-messages-and-the-aes-placeholder steps 1–6 minus the message row): split `data`, upload the
/// payload to msfs, insert IMAudio (fromId, toId = user or group, path = url, size,
/// duration, created). Returns the audio id whose decimal string becomes the message
/// content; `Ok(None)` when `data` is ≤ 4 bytes. Any upload/insert failure is an error
/// (the caller replies msg_id 0, Q-M02).
pub(crate) async fn store_voice(
    pool: &mut DbPool<'_>,
    msfs: &MsfsClient,
    from_id: u32,
    to_id: u32,
    data: &[u8],
    created: u32,
) -> Result<Option<u32>> {
    let Some((duration, payload)) = split_voice(data) else {
        return Ok(None);
    };
    let url = msfs.upload(payload).await?;
    let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let id = insert(
        pool,
        &NewAudio {
            from_id,
            to_id,
            path: &url,
            size,
            duration,
            created,
        },
    )
    .await?;
    Ok(Some(id))
}

/// Voice read path for one message whose content is `content`: IMAudio by id;
/// query error → Remove; no row (or non-numeric content) → Unchanged; row with path,
/// duration and size non-zero → download (2 s); success with matching length → Data.
pub(crate) async fn expand_voice(
    pool: &mut DbPool<'_>,
    msfs: &MsfsClient,
    content: &[u8],
) -> VoiceExpansion {
    let Some(id) = parse_audio_id(content) else {
        return VoiceExpansion::Unchanged;
    };
    let audio = match get(pool, id).await {
        Ok(Some(a)) => a,
        Ok(None) => return VoiceExpansion::Unchanged,
        Err(e) => {
            tracing::warn!(audio_id = id, error = %e, "IMAudio lookup failed");
            return VoiceExpansion::Remove;
        }
    };
    if audio.path.is_empty() || audio.duration == 0 || audio.size == 0 {
        return VoiceExpansion::Unchanged;
    }
    match msfs.download(&audio.path, audio.size).await {
        Ok(Some(payload)) => {
            let mut out = Vec::with_capacity(payload.len() + 4);
            out.extend_from_slice(&audio.duration.to_be_bytes());
            out.extend_from_slice(&payload);
            VoiceExpansion::Data(out)
        }
        Ok(None) => VoiceExpansion::Unchanged,
        Err(e) => {
            tracing::debug!(audio_id = id, error = %e, "voice download failed");
            VoiceExpansion::Unchanged
        }
    }
}

/// What the read path does with one stored voice message (docs/compatibility.md#voice-messages-and-the-aes-placeholder read path, Q-M11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceExpansion {
    /// The IMAudio query failed: drop the message from the reply.
    Remove,
    /// Keep `msg_data` as stored (the audio id string).
    Unchanged,
    /// Replace `msg_data` with 4-byte BE duration + downloaded payload.
    Data(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_parse() {
        assert_eq!(split_voice(b"\0\0\0\x05"), None);
        assert_eq!(split_voice(b"\0\0\0\x05ab"), Some((5, &b"ab"[..])));
        assert_eq!(parse_audio_id(b"123"), Some(123));
        assert_eq!(parse_audio_id(b"1 OR 1=1"), None);
        assert_eq!(parse_audio_id(b""), None);
        assert_eq!(parse_audio_id(b"99999999999"), None);
    }
}
