//! Device tokens for push notifications (Redis instance `token`).

use crate::error::Result;
use crate::repo::token as repo;
use crate::Store;

pub use crate::repo::token::{
    parse_value, stored_value, DeviceToken, TokenKind, CLIENT_TYPE_ANDROID, CLIENT_TYPE_IOS,
};

/// Device tokens (Redis instance `token`). Obtain with [`Store::tokens`].
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    store: &'a Store,
}

impl Store {
    /// Device-token repository (Redis instance `token`).
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { store: self }
    }
}

impl Tokens<'_> {
    /// setDevicesToken, exactly as the original: GET `device_<U>`; if the old value has a
    /// `:` and GET `device_<old token>` is non-empty, SET it to `""`; then SET `device_<U>`
    /// = prefixed value and SET `device_<token>` = `<U>`. An empty token with a non-mobile
    /// client type is the logout reset (Q-T01).
    pub async fn set_device_token(
        &self,
        user_id: u32,
        token: &str,
        client_type: u32,
    ) -> Result<()> {
        repo::set_device_token(self.store.token(), user_id, token, client_type).await
    }

    /// GET `device_<key_suffix>` (raw stored value; `None` when missing).
    pub async fn raw(&self, key_suffix: &str) -> Result<Option<String>> {
        repo::raw(self.store.token(), key_suffix).await
    }

    /// MGET `device_<id>` for all ids (one round trip): the stored values of the keys that
    /// have one, in lexicographic key order (duplicate ids collapse).
    pub async fn stored_values(&self, user_ids: &[u32]) -> Result<Vec<(u32, String)>> {
        repo::stored_values(self.store.token(), user_ids).await
    }

    /// [`Self::stored_values`] parsed with [`parse_value`]: the usable iOS/Android tokens,
    /// lexicographic key order.
    pub async fn device_tokens(&self, user_ids: &[u32]) -> Result<Vec<DeviceToken>> {
        repo::device_tokens(self.store.token(), user_ids).await
    }
}
