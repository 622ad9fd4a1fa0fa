//! Every Lua script of the crate. Each runs atomically on the server; [`Script`] sends it
//! by its SHA-1 (EVALSHA) and loads it again when the server answers NOSCRIPT (after a
//! restart or SCRIPT FLUSH).

use std::sync::OnceLock;

/// A Lua script run with EVALSHA. Declare it as a `static` (the loaded form is computed once
/// per script, on first use).
#[derive(Debug)]
pub struct Script {
    name: &'static str,
    source: &'static str,
    loaded: OnceLock<fred::types::scripts::Script>,
}

impl Script {
    /// A script called `name` (used in error context) with Lua `source`.
    pub const fn new(name: &'static str, source: &'static str) -> Self {
        Script {
            name,
            source,
            loaded: OnceLock::new(),
        }
    }

    /// The name used in error context.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// fred's script (source and SHA-1).
    pub(crate) fn fred(&self) -> &fred::types::scripts::Script {
        self.loaded
            .get_or_init(|| fred::types::scripts::Script::from_lua(self.source))
    }
}

/// INCRBY 1 only when the counter exists; nil otherwise.
pub(crate) static INCR_IF_EXISTS: Script = Script::new(
    "msg_id incr_if_exists",
    "if redis.call('EXISTS', KEYS[1]) == 1 then \
       return redis.call('INCRBY', KEYS[1], 1) \
     end \
     return false",
);

/// Raise the counter to at least ARGV[1] (seed from MySQL), then INCRBY 1.
pub(crate) static SEED_AND_INCR: Script = Script::new(
    "msg_id seed_and_incr",
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '-1') or -1 \
     local seed = tonumber(ARGV[1]) \
     if cur < seed then redis.call('SET', KEYS[1], ARGV[1]) end \
     return redis.call('INCRBY', KEYS[1], 1)",
);

/// INCRBY 1 of every counter that exists, in KEYS order (a key given twice is incremented
/// twice); 0 for a missing one, which the caller seeds.
pub(crate) static INCR_MANY_IF_EXIST: Script = Script::new(
    "msg_id incr_many_if_exist",
    "local out = {} \
     for i, k in ipairs(KEYS) do \
       if redis.call('EXISTS', k) == 1 then out[i] = redis.call('INCRBY', k, 1) \
       else out[i] = 0 end \
     end \
     return out",
);

/// HINCRBY KEYS[i] ARGV[2i-1] ARGV[2i] for every i: the unread counters of a batch of
/// messages (field, then how many). A key that is not a hash is skipped (one bad key must
/// not stop everyone's counters); returns the 1-based indexes of the skipped keys.
pub(crate) static HINCR_MANY: Script = Script::new(
    "unread hincr_many",
    "local skipped = {} \
     for i, k in ipairs(KEYS) do \
       local t = redis.call('TYPE', k).ok \
       if t == 'hash' or t == 'none' then \
         redis.call('HINCRBY', k, ARGV[2 * i - 1], ARGV[2 * i]) \
       else \
         skipped[#skipped + 1] = i \
       end \
     end \
     return skipped",
);

/// Copy every field of KEYS[1] into KEYS[2] (HMSET); nothing when KEYS[1] is empty
/// (Q-C04). Returns the copied `count` (or nil).
pub(crate) static MARK_READ: Script = Script::new(
    "group mark_read",
    "local all = redis.call('HGETALL', KEYS[1]) \
     if #all == 0 then return false end \
     redis.call('HSET', KEYS[2], unpack(all)) \
     return redis.call('HGET', KEYS[1], 'count')",
);

/// HINCRBY KEYS[1] count 1, then copy KEYS[1] into KEYS[2] (the sender has read
/// everything up to its own message). Returns the new total.
pub(crate) static GROUP_INCR: Script = Script::new(
    "group incr",
    "local n = redis.call('HINCRBY', KEYS[1], 'count', 1) \
     local all = redis.call('HGETALL', KEYS[1]) \
     redis.call('HSET', KEYS[2], unpack(all)) \
     return n",
);

/// Take or renew the lease KEYS[1] for holder ARGV[1] for ARGV[2] ms: renewed when the holder
/// has it, taken when nobody does. Returns 1 when the caller holds it afterwards, else 0.
pub(crate) static LEASE_TAKE: Script = Script::new(
    "lease take",
    "if redis.call('GET', KEYS[1]) == ARGV[1] then \
       redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 \
     end \
     if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end \
     return 0",
);

/// Delete the lease KEYS[1] only when holder ARGV[1] has it. Returns 1 when deleted.
pub(crate) static LEASE_RELEASE: Script = Script::new(
    "lease release",
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end \
     return 0",
);

/// Raise the decimal KEYS[1] to ARGV[1] (never lowers it; a missing or non-numeric value is
/// replaced). Returns the value afterwards.
pub(crate) static RAISE_TO: Script = Script::new(
    "raise to",
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '') \
     local new = tonumber(ARGV[1]) \
     if cur == nil or cur < new then redis.call('SET', KEYS[1], ARGV[1]) return new end \
     return cur",
);

/// One login failure at ARGV[1] (unix s) on the list KEYS[1], which keeps the newest ARGV[2]
/// entries and expires ARGV[3] s (the window) after the last failure. A key of another type
/// is replaced (it can only be left over from something else). Returns the time the name
/// stays locked until when more than ARGV[4] failures lie within the window (the oldest of
/// them plus the window), else 0.
pub(crate) static LOGIN_FAILURE: Script = Script::new(
    "login failure",
    "if redis.call('TYPE', KEYS[1]).ok ~= 'list' then redis.call('DEL', KEYS[1]) end \
     local now, window = tonumber(ARGV[1]), tonumber(ARGV[3]) \
     redis.call('LPUSH', KEYS[1], ARGV[1]) \
     redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1) \
     redis.call('EXPIRE', KEYS[1], ARGV[3]) \
     local n, oldest = 0, now \
     for _, t in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do \
       local v = tonumber(t) \
       if v and v >= now - window then n = n + 1 oldest = math.min(oldest, v) end \
     end \
     if n > tonumber(ARGV[4]) then return oldest + window end \
     return 0",
);

/// Adds member ARGV[1] with score ARGV[2] (locked until) to the zset KEYS[1] and drops the
/// members whose time has passed (ARGV[3] = now).
pub(crate) static LOCK_ADD: Script = Script::new(
    "login lock add",
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3]) \
     redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) \
     return 1",
);

/// Members of the zset KEYS[1] with a score above ARGV[1] (now), with their scores.
pub(crate) static LOCKS_AFTER: Script = Script::new(
    "login locks after",
    "if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then return {} end \
     return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')",
);
