//! Device tokens for push notifications (Redis instance `token`):
//! `device_<U>` = `ios:<token>` / `android:<token>` / `<token>` / `""`, and the reverse key
//! `device_<token>` = `<U>` (or `""` once superseded). Formats are the stored-data contract
//! of the original (Q-R08, Q-S08, Q-T01 kept).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::redis::keys::{device_key, user_device_key};
use crate::redis::Cache;

/// ClientType value of iOS clients (token stored as `ios:<token>`).
pub const CLIENT_TYPE_IOS: u32 = 0x11;
/// ClientType value of Android clients (token stored as `android:<token>`).
pub const CLIENT_TYPE_ANDROID: u32 = 0x12;

/// Platform of a stored device token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `ios:` prefix (ClientType 0x11).
    Ios,
    /// `android:` prefix (ClientType 0x12).
    Android,
}

impl TokenKind {
    /// The protocol's ClientType value.
    pub fn client_type(self) -> u32 {
        match self {
            TokenKind::Ios => CLIENT_TYPE_IOS,
            TokenKind::Android => CLIENT_TYPE_ANDROID,
        }
    }
}

/// A usable device token of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceToken {
    pub user_id: u32,
    pub kind: TokenKind,
    /// The token text (after the first `:`).
    pub token: String,
}

/// The stored value for `token` of a client of type `client_type`
/// (`ios:` for 0x11, `android:` for 0x12, bare token otherwise).
pub fn stored_value(token: &str, client_type: u32) -> String {
    match client_type {
        CLIENT_TYPE_IOS => format!("ios:{token}"),
        CLIENT_TYPE_ANDROID => format!("android:{token}"),
        _ => token.to_owned(),
    }
}

/// Parses a stored `device_<U>` value: needs a `:`; prefix `ios` or `android`, anything
/// else (bare or empty values, other prefixes) → `None`.
pub fn parse_value(user_id: u32, value: &str) -> Option<DeviceToken> {
    let (prefix, token) = value.split_once(':')?;
    let kind = match prefix {
        "ios" => TokenKind::Ios,
        "android" => TokenKind::Android,
        _ => return None,
    };
    Some(DeviceToken {
        user_id,
        kind,
        token: token.to_owned(),
    })
}

/// setDevicesToken (docs/compatibility.md#push-shield-and-device-tokens), exactly as the original: GET `device_<U>`; if
/// the old value has a `:` and GET `device_<old token>` is non-empty, SET it to `""`;
/// then SET `device_<U>` = prefixed value and SET `device_<token>` = `<U>`.
/// An empty token with a non-mobile client type is the logout reset (Q-T01).
pub(crate) async fn set_device_token(
    cache: &Cache,
    user_id: u32,
    token: &str,
    client_type: u32,
) -> Result<()> {
    let user_key = user_device_key(user_id);
    if let Some(old) = cache.get(&user_key).await? {
        if let Some((_, old_token)) = old.split_once(':') {
            let old_key = device_key(old_token);
            if cache.get(&old_key).await?.is_some_and(|v| !v.is_empty()) {
                cache.set(&old_key, "").await?;
            }
        }
    }
    cache
        .set(&user_key, &stored_value(token, client_type))
        .await?;
    cache.set(&device_key(token), &user_id.to_string()).await
}

/// Reads GET `device_<U>` (raw stored value; `None` when missing).
pub(crate) async fn raw(cache: &Cache, key_suffix: &str) -> Result<Option<String>> {
    cache.get(&device_key(key_suffix)).await
}

/// MGET `device_<id>` for all ids (one round trip) and returns the stored values of the
/// keys that have one, in lexicographic key order (duplicate ids collapse).
pub(crate) async fn stored_values(cache: &Cache, user_ids: &[u32]) -> Result<Vec<(u32, String)>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = user_ids.iter().map(|&u| user_device_key(u)).collect();
    let values = cache.mget(&keys).await?;
    let mut by_key: BTreeMap<String, (u32, String)> = BTreeMap::new();
    for ((key, id), v) in keys.into_iter().zip(user_ids).zip(values) {
        if let Some(v) = v {
            by_key.insert(key, (*id, v));
        }
    }
    Ok(by_key.into_values().collect())
}

/// [`Tokens::stored_values`] parsed with [`parse_value`]: the usable iOS/Android tokens,
/// lexicographic key order.
pub(crate) async fn device_tokens(cache: &Cache, user_ids: &[u32]) -> Result<Vec<DeviceToken>> {
    Ok(stored_values(cache, user_ids)
        .await?
        .into_iter()
        .filter_map(|(u, v)| parse_value(u, &v))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(stored_value("t", 0x11), "ios:t");
        assert_eq!(stored_value("t", 0x12), "android:t");
        assert_eq!(stored_value("t", 1), "t");
        assert_eq!(parse_value(1, "t"), None);
        assert_eq!(parse_value(1, ""), None);
        assert_eq!(parse_value(1, "win:x"), None);
        assert_eq!(
            parse_value(3, "ios:a:b"),
            Some(DeviceToken {
                user_id: 3,
                kind: TokenKind::Ios,
                token: "a:b".into()
            })
        );
    }
}
