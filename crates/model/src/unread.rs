//! Unread counters in the Redis `unread` instance (behaviour.md §5, §10.6, §11.12, §11.17).
//!
//! Keys (exactly those of the original, so existing data keeps working):
//! * `unread_<U>` hash: field `<P>` → unread single messages from P to U;
//! * `<G>_im_group_msg` hash: field `count` → total messages stored in G;
//! * `<U>_<G>_im_user_group` hash: field `count` → G's total when U last read/sent.
//!
//! Group unread of U in G = group total − user copy (0 when negative, Q-C02).
//! Copies of the group total are done atomically in Lua (Q-C01).

use crate::cache::Script;
use crate::error::Result;
use crate::store::Store;

/// `unread_<U>`.
pub fn single_key(user: u32) -> String {
    format!("unread_{user}")
}

/// `<G>_im_group_msg`.
pub fn group_total_key(group: u32) -> String {
    format!("{group}_im_group_msg")
}

/// `<U>_<G>_im_user_group`.
pub fn user_group_key(user: u32, group: u32) -> String {
    format!("{user}_{group}_im_user_group")
}

/// Field of the group counters.
pub const COUNT_FIELD: &str = "count";

/// C `atoi`-like lenient parse (leading digits; garbage → 0), Q-D02.
pub fn atoi(s: &str) -> i64 {
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

/// Copy every field of KEYS[1] into KEYS[2] (HMSET); nothing when KEYS[1] is empty
/// (Q-C04). Returns the copied `count` (or nil).
const MARK_READ: Script = Script {
    name: "group mark_read",
    source: "local all = redis.call('HGETALL', KEYS[1]) \
             if #all == 0 then return false end \
             redis.call('HSET', KEYS[2], unpack(all)) \
             return redis.call('HGET', KEYS[1], 'count')",
};

/// HINCRBY KEYS[1] count 1, then copy KEYS[1] into KEYS[2] (the sender has read
/// everything up to its own message). Returns the new total.
const GROUP_INCR: Script = Script {
    name: "group incr",
    source: "local n = redis.call('HINCRBY', KEYS[1], 'count', 1) \
             local all = redis.call('HGETALL', KEYS[1]) \
             redis.call('HSET', KEYS[2], unpack(all)) \
             return n",
};

/// Unread counters in the Redis `unread` instance. Obtain with [`Store::counters`].
#[derive(Clone, Copy)]
pub struct Counters<'a> {
    store: &'a Store,
}

impl Store {
    /// Unread-counter repository (keys in the Redis `unread` instance, which itself is
    /// [`Store::unread`]).
    pub fn counters(&self) -> Counters<'_> {
        Counters { store: self }
    }
}

impl Counters<'_> {
    /// After a stored single message: HINCRBY `unread_<to>` `<from>` 1 → new count.
    pub async fn incr_single(&self, to: u32, from: u32) -> Result<i64> {
        self.store
            .unread()
            .hincrby(&single_key(to), &from.to_string(), 1)
            .await
    }

    /// Mark a single session read: HDEL `unread_<user>` `<peer>` → whether a field was removed.
    pub async fn clear_single(&self, user: u32, peer: u32) -> Result<bool> {
        let n = self
            .store
            .unread()
            .hdel(&single_key(user), &[&peer.to_string()])
            .await?;
        Ok(n > 0)
    }

    /// All single counters of `user` (HGETALL `unread_<user>`), in lexicographic order of the
    /// field strings, as (peer, count) with lenient integer parsing.
    pub async fn single_counts(&self, user: u32) -> Result<Vec<(u32, u32)>> {
        let all = self.store.unread().hgetall(&single_key(user)).await?;
        Ok(all
            .into_iter()
            .map(|(k, v)| (clamp_u32(atoi(&k)), clamp_u32(atoi(&v))))
            .collect())
    }

    /// After a stored group message from `sender`: atomically HINCRBY `<G>_im_group_msg`
    /// `count` 1 and copy that hash into `<sender>_<G>_im_user_group`. Returns the new total.
    pub async fn group_incr(&self, group: u32, sender: u32) -> Result<u64> {
        let keys = [group_total_key(group), user_group_key(sender, group)];
        let v = self.store.unread().eval(&GROUP_INCR, &keys, &[]).await?;
        Ok(v.as_i64().map(|n| n.max(0) as u64).unwrap_or(0))
    }

    /// Mark group `group` read for `user` (§10.6 type 2, Q-C01): atomically copy
    /// `<G>_im_group_msg` into `<U>_<G>_im_user_group`. Returns the copied total, `None` when
    /// the group hash does not exist (nothing changes, Q-C04).
    pub async fn group_mark_read(&self, user: u32, group: u32) -> Result<Option<u64>> {
        let keys = [group_total_key(group), user_group_key(user, group)];
        let v = self.store.unread().eval(&MARK_READ, &keys, &[]).await?;
        Ok(v.as_i64().map(|n| n.max(0) as u64))
    }

    /// Group unread of `user` for each of `groups` (§11.12 rule), all HGETs in one pipeline:
    /// `None` when `<G>_im_group_msg` has no `count` (the caller skips G); otherwise
    /// total − user copy (missing copy = 0), 0 when the copy is larger (Q-C02 fixed).
    /// The result has one entry per input group, in input order (duplicates kept).
    pub async fn group_unread(&self, user: u32, groups: &[u32]) -> Result<Vec<(u32, Option<u32>)>> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut items = Vec::with_capacity(groups.len() * 2);
        for &g in groups {
            items.push((group_total_key(g), COUNT_FIELD.to_string()));
            items.push((user_group_key(user, g), COUNT_FIELD.to_string()));
        }
        let vals = self.store.unread().hget_many(&items).await?;
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

    /// Push badge of `user` (§11.17): Σ of `unread_<user>` values + Σ of the group unread
    /// of `groups` (the caller passes the user's active groups, duplicates counted as given).
    pub async fn push_badge(&self, user: u32, groups: &[u32]) -> Result<u32> {
        let single: u64 = self
            .single_counts(user)
            .await?
            .iter()
            .map(|&(_, n)| u64::from(n))
            .sum();
        let group: u64 = self
            .group_unread(user, groups)
            .await?
            .iter()
            .filter_map(|&(_, n)| n.map(u64::from))
            .sum();
        Ok(u32::try_from(single + group).unwrap_or(u32::MAX))
    }
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
