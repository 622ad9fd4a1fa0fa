//! Voice messages: IMAudio metadata and the msfs payload store.

use crate::db::Db;
use crate::error::Result;
use crate::repo::audio as repo;
use crate::Store;

pub use crate::repo::audio::{parse_audio_id, split_voice, Audio, NewAudio, VoiceExpansion};

/// IMAudio and the msfs voice payloads. Obtain with [`Store::audio`].
#[derive(Clone, Copy)]
pub struct Audios<'a> {
    store: &'a Store,
}

impl Store {
    /// IMAudio + msfs voice repository.
    pub fn audio(&self) -> Audios<'_> {
        Audios { store: self }
    }
}

impl Audios<'_> {
    /// Writes (master) an `IMAudio` row → new id.
    pub async fn insert(&self, a: &NewAudio<'_>) -> Result<u32> {
        repo::insert(&mut self.store.db(Db::Master), a).await
    }

    /// Reads (slave) the `IMAudio` row `id`; `None` when missing.
    pub async fn get(&self, id: u32) -> Result<Option<Audio>> {
        repo::get(&mut self.store.db(Db::Slave), id).await
    }

    /// Voice store path: split `data`, upload the payload to msfs, write (master) `IMAudio`.
    /// Returns the audio id whose decimal string becomes the message content; `Ok(None)`
    /// when `data` is ≤ 4 bytes (Q-M02).
    pub async fn store_voice(
        &self,
        from_id: u32,
        to_id: u32,
        data: &[u8],
        created: u32,
    ) -> Result<Option<u32>> {
        let msfs = self.store.msfs();
        repo::store_voice(
            &mut self.store.db(Db::Master),
            msfs,
            from_id,
            to_id,
            data,
            created,
        )
        .await
    }

    /// Voice read path of one message whose content is `content`: reads (slave) `IMAudio`
    /// by id, then downloads the payload from msfs (Q-M11).
    pub async fn expand_voice(&self, content: &[u8]) -> VoiceExpansion {
        let msfs = self.store.msfs();
        repo::expand_voice(&mut self.store.db(Db::Slave), msfs, content).await
    }
}
