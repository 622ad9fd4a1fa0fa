//! Login failures shared by every db-proxy instance (Redis `unread` instance): each name's
//! recent failure times in `dbproxy_login_fail_<digest>`, and the names locked right now in
//! the zset `dbproxy_login_locked` (see [`crate::keys`]). Both keys are touched one at a time,
//! so they may live in different Redis Cluster slots.

use crate::error::Result;
use crate::redis::keys::{login_digest, login_failures_key, LOGIN_LOCKED};
use crate::redis::scripts::{LOCKS_AFTER, LOCK_ADD, LOGIN_FAILURE};
use crate::redis::{Cache, ScriptValue};

/// Records a failure of `name` at `now` (keeping `max_failures + 1` times, expiring
/// `window_secs` after the last); when that makes more than `max_failures` within the window,
/// adds the name to the locked set and returns the time it stays locked until.
pub(crate) async fn record_failure(
    cache: &Cache,
    name: &str,
    now: u64,
    max_failures: usize,
    window_secs: u64,
) -> Result<Option<u64>> {
    let keys = [login_failures_key(name)];
    let args = [
        now.to_string(),
        (max_failures + 1).to_string(),
        window_secs.max(1).to_string(),
        max_failures.to_string(),
    ];
    let until = cache.eval(&LOGIN_FAILURE, &keys, &args).await?;
    let until = until
        .as_i64()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > now);
    if let Some(t) = until {
        let keys = [LOGIN_LOCKED.to_owned()];
        let args = [login_digest(name), t.to_string(), now.to_string()];
        cache.eval(&LOCK_ADD, &keys, &args).await?;
    }
    Ok(until)
}

/// The names locked after `now`: (digest, locked until).
pub(crate) async fn locked_after(cache: &Cache, now: u64) -> Result<Vec<(String, u64)>> {
    let keys = [LOGIN_LOCKED.to_owned()];
    let v = cache.eval(&LOCKS_AFTER, &keys, &[now.to_string()]).await?;
    let ScriptValue::List(items) = v else {
        return Ok(Vec::new());
    };
    Ok(items
        .chunks(2)
        .filter_map(|pair| match pair {
            [ScriptValue::Text(digest), score] => {
                let until = score.as_i64().and_then(|t| u64::try_from(t).ok())?;
                Some((digest.clone(), until))
            }
            _ => None,
        })
        .collect())
}

/// Forgets the failures of `name` and any lock on it.
pub(crate) async fn clear(cache: &Cache, name: &str) -> Result<()> {
    cache.del(&[&login_failures_key(name)]).await?;
    let keys = [LOGIN_LOCKED.to_owned()];
    // A past time as the lock's end: LOCK_ADD's sweep then removes it at once.
    cache
        .eval(
            &LOCK_ADD,
            &keys,
            &[login_digest(name), "0".into(), "0".into()],
        )
        .await?;
    Ok(())
}
