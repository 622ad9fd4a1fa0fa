//! Unread counters in the Redis `unread` instance (docs/compatibility.md#redis-key-layout, docs/compatibility.md#mark-read, docs/compatibility.md#unread-count-list, docs/compatibility.md#push-shield-and-device-tokens).
//!
//! Keys (exactly those of the original, so existing data keeps working):
//! * `unread_<U>` hash: field `<P>` → unread single messages from P to U;
//! * `<G>_im_group_msg` hash: field `count` → total messages stored in G;
//! * `<U>_<G>_im_user_group` hash: field `count` → G's total when U last read/sent.
//!
//! Group unread of U in G = group total − user copy (0 when negative, Q-C02).
//! Copies of the group total are done atomically in Lua (Q-C01).

use crate::error::Result;
use crate::redis::keys::{group_total_key, single_unread_key, user_group_key, COUNT_FIELD};
use crate::redis::scripts::{GROUP_INCR, MARK_READ};
use crate::redis::Cache;

/// C `atoi`-like lenient parse (leading digits; garbage → 0), Q-D02.
pub(crate) fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(|b| b.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -v
    } else {
        v
    }
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// After a stored single message: HINCRBY `unread_<to>` `<from>` 1 → new count.
pub(crate) async fn incr_single(cache: &Cache, to: u32, from: u32) -> Result<i64> {
    cache
        .hincrby(&single_unread_key(to), &from.to_string(), 1)
        .await
}

/// Mark a single session read: HDEL `unread_<user>` `<peer>` → whether a field was removed.
pub(crate) async fn clear_single(cache: &Cache, user: u32, peer: u32) -> Result<bool> {
    let n = cache
        .hdel(&single_unread_key(user), &[&peer.to_string()])
        .await?;
    Ok(n > 0)
}

/// All single counters of `user` (HGETALL `unread_<user>`), in lexicographic order of the
/// field strings, as (peer, count) with lenient integer parsing.
pub(crate) async fn single_counts(cache: &Cache, user: u32) -> Result<Vec<(u32, u32)>> {
    let all = cache.hgetall(&single_unread_key(user)).await?;
    Ok(all
        .into_iter()
        .map(|(k, v)| (clamp_u32(atoi(&k)), clamp_u32(atoi(&v))))
        .collect())
}

/// After a stored group message from `sender`: atomically HINCRBY `<G>_im_group_msg`
/// `count` 1 and copy that hash into `<sender>_<G>_im_user_group`. Returns the new total.
pub(crate) async fn group_incr(cache: &Cache, group: u32, sender: u32) -> Result<u64> {
    let keys = [group_total_key(group), user_group_key(sender, group)];
    let v = cache.eval(&GROUP_INCR, &keys, &[]).await?;
    Ok(v.as_i64().map(|n| n.max(0) as u64).unwrap_or(0))
}

/// Mark group `group` read for `user` (docs/compatibility.md#mark-read type 2, Q-C01): atomically copy
/// `<G>_im_group_msg` into `<U>_<G>_im_user_group`. Returns the copied total, `None` when
/// the group hash does not exist (nothing changes, Q-C04).
pub(crate) async fn group_mark_read(cache: &Cache, user: u32, group: u32) -> Result<Option<u64>> {
    let keys = [group_total_key(group), user_group_key(user, group)];
    let v = cache.eval(&MARK_READ, &keys, &[]).await?;
    Ok(v.as_i64().map(|n| n.max(0) as u64))
}

/// Group unread of `user` for each of `groups` (docs/compatibility.md#unread-count-list rule), all HGETs in one pipeline:
/// `None` when `<G>_im_group_msg` has no `count` (the caller skips G); otherwise
/// total − user copy (missing copy = 0), 0 when the copy is larger (Q-C02 fixed).
/// The result has one entry per input group, in input order (duplicates kept).
pub(crate) async fn group_unread(
    cache: &Cache,
    user: u32,
    groups: &[u32],
) -> Result<Vec<(u32, Option<u32>)>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::with_capacity(groups.len() * 2);
    for &g in groups {
        items.push((group_total_key(g), COUNT_FIELD.to_string()));
        items.push((user_group_key(user, g), COUNT_FIELD.to_string()));
    }
    let vals = cache.hget_many(&items).await?;
    Ok(groups
        .iter()
        .zip(vals.chunks(2))
        .map(|(&g, pair)| {
            let total = pair.first().cloned().flatten();
            let seen = pair.get(1).cloned().flatten();
            let n = total.map(|t| {
                let t = atoi(&t);
                let s = seen.as_deref().map(atoi).unwrap_or(0);
                if t >= s {
                    clamp_u32(t - s)
                } else {
                    0
                }
            });
            (g, n)
        })
        .collect())
}

/// Push badge of `user` (docs/compatibility.md#push-shield-and-device-tokens): Σ of `unread_<user>` values + Σ of the group unread
/// of `groups` (the caller passes the user's active groups, duplicates counted as given).
pub(crate) async fn push_badge(cache: &Cache, user: u32, groups: &[u32]) -> Result<u32> {
    let single: u64 = single_counts(cache, user)
        .await?
        .iter()
        .map(|&(_, n)| u64::from(n))
        .sum();
    let group: u64 = group_unread(cache, user, groups)
        .await?
        .iter()
        .filter_map(|&(_, n)| n.map(u64::from))
        .sum();
    Ok(u32::try_from(single + group).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn atoi_like_c() {
        assert_eq!(super::atoi("12abc"), 12);
        assert_eq!(super::atoi(" -3"), -3);
        assert_eq!(super::atoi("x"), 0);
        assert_eq!(super::atoi(""), 0);
    }
}
