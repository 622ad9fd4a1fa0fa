//! The chaos suite: the real binary, real sockets, private engine processes (a private
//! redis-server per test, a private mariadbd where a test kills or freezes MariaDB), each
//! check with its numbers asserted. `DBPROXY_CHAOS=long` (or `cargo xtask chaos`) runs the
//! long variants; the normal suite runs the short ones.

mod engines;
mod frames;
mod memory;
mod signals;
mod strings;

use std::time::Duration;

/// Whether the long variants were asked for.
pub fn long() -> bool {
    std::env::var("DBPROXY_CHAOS").is_ok_and(|v| v == "long")
}

/// `short` in the normal suite, `long` with `DBPROXY_CHAOS=long`.
pub fn scaled<T>(short: T, long_value: T) -> T {
    if long() {
        long_value
    } else {
        short
    }
}

/// The 99th percentile of `samples` (zero when empty).
pub fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples
        .get((samples.len() * 99 / 100).min(samples.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}
