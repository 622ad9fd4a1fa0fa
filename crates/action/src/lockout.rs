//! Per-name login lockout (docs/compatibility.md#login-and-lockout): more than `max_failures` failed validations
//! within `window` locks the name out (result code 6) until old failures age out.
//!
//! Unlike the original (Q-L02) memory is bounded: a name's list never holds more than
//! `max_failures + 1` timestamps, names without recent failures are forgotten, and the
//! whole map is swept when it reaches `max_names`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// This process's own failure counts (every connection). With [`SharedLocks`] (what every
/// instance recorded) it decides the lockout; alone while Redis cannot answer.
#[derive(Debug)]
pub struct LoginGuard {
    window_secs: u64,
    max_failures: usize,
    max_names: usize,
    failures: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl LoginGuard {
    /// `max_failures` failures are tolerated; one more within `window` locks the name.
    pub fn new(window: Duration, max_failures: usize, max_names: usize) -> Self {
        Self {
            window_secs: window.as_secs(),
            max_failures,
            max_names: max_names.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Drops failures older than the window; true when the name is locked out now.
    pub fn is_locked(&self, name: &str, now: u64) -> bool {
        let mut map = self.lock();
        let Some(list) = map.get_mut(name) else {
            return false;
        };
        let cutoff = now.saturating_sub(self.window_secs);
        while list.back().is_some_and(|&t| t < cutoff) {
            list.pop_back();
        }
        if list.is_empty() {
            map.remove(name);
            return false;
        }
        list.len() > self.max_failures
    }

    /// Records one failed validation of `name` at `now`.
    pub fn record_failure(&self, name: &str, now: u64) {
        let mut map = self.lock();
        if map.len() >= self.max_names && !map.contains_key(name) {
            let cutoff = now.saturating_sub(self.window_secs);
            map.retain(|_, list| list.front().is_some_and(|&t| t >= cutoff));
            if map.len() >= self.max_names {
                tracing::warn!(
                    names = map.len(),
                    "login lockout table full; failure not tracked"
                );
                return;
            }
        }
        let list = map.entry(name.to_owned()).or_default();
        list.push_front(now);
        list.truncate(self.max_failures + 1);
    }

    /// Forgets the failures of `name` (after a successful validation).
    /// Forgets `name`; true when it had failures recorded here.
    pub fn record_success(&self, name: &str) -> bool {
        self.lock().remove(name).is_some()
    }

    /// Number of names currently tracked (for metrics and tests).
    pub fn tracked_names(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<u64>>> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often the set of names locked through other instances is read again from Redis.
pub const SHARED_REFRESH: Duration = Duration::from_secs(1);

/// Names locked by any instance (`dbproxy_login_locked` in Redis), as this process last read
/// them, by `keys::login_digest` → locked until (unix s). A login consults this copy, so
/// logins of names without failures cost no Redis call; the copy is read again at most once
/// per [`SHARED_REFRESH`], by the login that finds it due.
#[derive(Debug, Default)]
pub struct SharedLocks {
    locked: Mutex<HashMap<String, u64>>,
    /// Unix ms of the last refresh (or its start).
    refreshed_ms: std::sync::atomic::AtomicU64,
}

impl SharedLocks {
    /// Whether `digest` is locked at `now`.
    pub fn is_locked(&self, digest: &str, now: u64) -> bool {
        self.map().get(digest).is_some_and(|&until| until > now)
    }

    /// Records a lock learnt from this process's own failure.
    pub fn insert(&self, digest: String, until: u64) {
        self.map().insert(digest, until);
    }

    /// Forgets a lock (a successful login after the failures aged out).
    pub fn remove(&self, digest: &str) {
        self.map().remove(digest);
    }

    /// Merges what Redis holds now into the copy, dropping the locks that ended by `now`.
    /// Locks only end by time (a locked name cannot log in to clear its lock), so a lock this
    /// process learnt after Redis answered the read is kept.
    pub fn refresh(&self, locks: Vec<(String, u64)>, now: u64) {
        let mut map = self.map();
        map.retain(|_, &mut until| until > now);
        for (digest, until) in locks {
            let e = map.entry(digest).or_insert(until);
            *e = (*e).max(until);
        }
    }

    /// Whether the copy is older than [`SHARED_REFRESH`] at `now_ms`; true for exactly one
    /// caller per refresh (it claims the refresh).
    pub fn claim_refresh(&self, now_ms: u64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.refreshed_ms.load(Ordering::Relaxed);
        let every = u64::try_from(SHARED_REFRESH.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(last) >= every
            && self
                .refreshed_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.locked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_expire_and_refresh_once_per_second() {
        let s = SharedLocks::default();
        s.insert("d1".into(), 2_000);
        assert!(s.is_locked("d1", 1_999));
        assert!(!s.is_locked("d1", 2_000), "until is exclusive");
        assert!(!s.is_locked("d2", 1_000));
        s.refresh(vec![("d2".into(), 3_000)], 1_000);
        assert!(s.is_locked("d1", 1_000), "a lock learnt here is kept");
        assert!(s.is_locked("d2", 1_000));
        s.refresh(Vec::new(), 2_500);
        assert!(
            !s.is_locked("d1", 1_000) && s.is_locked("d2", 2_500),
            "ended locks dropped"
        );
        assert!(s.claim_refresh(10_000));
        assert!(!s.claim_refresh(10_500), "claimed less than a second ago");
        assert!(s.claim_refresh(11_000));
    }

    #[test]
    fn eleventh_failure_within_window_locks() {
        let g = LoginGuard::new(Duration::from_secs(1800), 10, 100);
        for i in 0..10 {
            g.record_failure("bob", 1000 + i);
            assert!(!g.is_locked("bob", 1000 + i));
        }
        g.record_failure("bob", 1010);
        assert!(g.is_locked("bob", 1010));
        // Failures age out after the window.
        assert!(!g.is_locked("bob", 1000 + 1800 + 11));
        assert_eq!(g.tracked_names(), 0);
    }

    #[test]
    fn success_clears_and_table_is_bounded() {
        let g = LoginGuard::new(Duration::from_secs(1800), 10, 3);
        for i in 0..11 {
            g.record_failure("amy", i);
        }
        assert!(g.is_locked("amy", 11));
        g.record_success("amy");
        assert!(!g.is_locked("amy", 11));
        for n in 0..10 {
            g.record_failure(&format!("user{n}"), 5000);
        }
        assert!(g.tracked_names() <= 3);
    }
}
