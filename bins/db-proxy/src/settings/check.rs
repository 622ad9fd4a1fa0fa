//! Value checks run while deserializing: a bad value fails there, and the config crate adds
//! the key it came from (see `load::Error::Invalid`).

use std::net::IpAddr;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// An unsigned integer within `lo..=hi`.
fn in_range<'de, D: Deserializer<'de>>(d: D, lo: u64, hi: u64) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else if hi == u64::MAX {
        Err(D::Error::custom(format!(
            "{v} is out of range (at least {lo})"
        )))
    } else {
        Err(D::Error::custom(format!("{v} is out of range ({lo}-{hi})")))
    }
}

fn usize_in<'de, D: Deserializer<'de>>(d: D, lo: u64, hi: u64) -> Result<usize, D::Error> {
    let v = in_range(d, lo, hi)?;
    usize::try_from(v).map_err(|_| D::Error::custom(format!("{v} is too large")))
}

/// A TCP port, 1-65535.
pub(super) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = i64::deserialize(d)?;
    u16::try_from(v)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| D::Error::custom(format!("{v} is not a port (1-65535)")))
}

/// Worker threads, 1-1024.
pub(super) fn threads<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = i64::deserialize(d)?;
    match usize::try_from(v) {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(D::Error::custom(format!("{v} is out of range (1-1024)"))),
    }
}

/// Connections of one pool, 1-10000.
pub(super) fn pool_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    usize_in(d, 1, 10_000)
}

/// A Redis logical database, 0-15.
pub(super) fn redis_db<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = in_range(d, 0, 15)?;
    u8::try_from(v).map_err(|_| D::Error::custom(format!("{v} is out of range (0-15)")))
}

/// A count that must be at least 1.
pub(super) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    usize_in(d, 1, u64::MAX)
}

/// Requests in one coalesced batch, 1-32.
pub(super) fn batch_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    usize_in(d, 1, 32)
}

/// Coalesced batches running at once, 1-1024.
pub(super) fn slots<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    usize_in(d, 1, 1024)
}

/// The largest frame: at least the 16-byte header.
pub(super) fn frame_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = u64::deserialize(d)?;
    if v < 16 {
        return Err(D::Error::custom(format!(
            "{v} must be at least 16 (the header)"
        )));
    }
    usize::try_from(v).map_err(|_| D::Error::custom(format!("{v} is too large")))
}

/// A string that must not be empty (or only blanks).
pub(super) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(s)
}

/// A string that must not be empty (blanks allowed: a database or user name is taken as
/// written).
pub(super) fn not_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(s)
}

/// The AES key shared with msg_server: exactly 32 bytes.
pub(super) fn aes_key<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() != 32 {
        return Err(D::Error::custom(format!(
            "must be exactly 32 bytes (got {})",
            s.len()
        )));
    }
    Ok(s)
}

/// An `ip:port` address, or empty (off).
pub(super) fn socket_addr_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim().to_owned();
    if !s.is_empty() && s.parse::<std::net::SocketAddr>().is_err() {
        return Err(D::Error::custom(format!(
            "{s:?} is not an address like 127.0.0.1:9600 (empty turns it off)"
        )));
    }
    Ok(s)
}

/// A tracing filter directive.
pub(super) fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = non_empty(d)?;
    if tracing_subscriber::EnvFilter::try_new(&s).is_err() {
        return Err(D::Error::custom(format!(
            "`{s}` is not a valid filter directive"
        )));
    }
    Ok(s)
}

/// Listen addresses: a list, or one string split on `;` or `,`; at least one, each an IP.
pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items: Vec<String> = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split([';', ','])
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    };
    if items.is_empty() {
        return Err(D::Error::custom("at least one listen address is required"));
    }
    items
        .iter()
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| D::Error::custom(format!("`{a}` is not an IP address")))
        })
        .collect()
}

/// Durations written as whole milliseconds, at least 1.
pub(super) mod millis {
    use super::*;

    pub(in crate::settings) fn serialize<S: serde::Serializer>(
        d: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        super::millis_or_zero::serialize(d, s)
    }

    pub(in crate::settings) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        in_range(d, 1, u64::MAX).map(Duration::from_millis)
    }
}

/// Durations written as whole milliseconds, 0 allowed.
pub(super) mod millis_or_zero {
    use super::*;

    pub(in crate::settings) fn serialize<S: serde::Serializer>(
        d: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(in crate::settings) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A list of `host:port` (Redis sentinels): each with a host and a port 1-65535.
pub(super) fn host_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    for s in &list {
        let ok = s
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.trim().is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
        if !ok {
            return Err(D::Error::custom(format!("`{s}` is not host:port")));
        }
    }
    Ok(list)
}
