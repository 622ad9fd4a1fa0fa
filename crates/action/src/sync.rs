//! CSyncCenter's group-session sync (docs/compatibility.md#group-session-sync): after someone posts in a group,
//! bump (or create) the group's entry in every member's recent-session list.
//!
//! Fixes over the original: resumes from the stored `last_update_group` and uses `now` only
//! when the key is missing (Q-Y03); re-scans a small overlap so a `lastChated` committed late
//! with an earlier second is not missed, and only advances the mark after a successful scan
//! (Q-Y05); a proper interval timer and cancellation token instead of the spurious-wakeup
//! prone condition variable (Q-Y06).

use std::time::Duration;

use dbproxy_model::{session, Db, Store};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::command::now;

/// Seconds re-scanned before the last mark (idempotent: the same `updated` is written again).
pub const OVERLAP_SECS: u32 = 2;

/// Runs the sync until `shutdown` is cancelled: one pass immediately, then one every
/// `interval`, by the instance holding the lease `dbproxy_group_sync_lease` (the others
/// renew nothing and only follow the mark). A pass in progress is finished before returning,
/// then the lease is given up.
///
/// Reads/writes Redis `last_update_group` (unread), reads IMGroup and the member hashes,
/// writes IMRecentSession.
pub async fn run_group_sync(store: Store, interval: Duration, shutdown: CancellationToken) {
    let mut since = match store.sync_state().last_update_group().await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let t = now();
            // Raised, not set: another instance may have written a later mark meanwhile.
            if let Err(error) = store.sync_state().raise_last_update_group(t).await {
                tracing::warn!(%error, "group sync: cannot store last_update_group");
            }
            t
        }
        Err(error) => {
            tracing::warn!(%error, "group sync: cannot read last_update_group; starting from now");
            now()
        }
    };
    tracing::info!(since, "group session sync started");
    let holder = lease_holder();
    let lease_ms = lease_ttl(interval);
    let mut leading = false;
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let state = store.sync_state();
        // One instance of a deployment runs the passes; the others watch the shared mark.
        // Without Redis the pass runs anyway: it is idempotent, and it needs Redis itself.
        let lead = match state.take_sync_lease(&holder, lease_ms).await {
            Ok(held) => held,
            Err(error) => {
                if !crate::error::is_down(&error) {
                    tracing::warn!(%error, "group sync: cannot take the lease; running the pass");
                }
                true
            }
        };
        if lead != leading {
            tracing::info!(
                holder,
                lead,
                "group sync: lease {}",
                if lead { "taken" } else { "held elsewhere" }
            );
            leading = lead;
        }
        metrics::gauge!(crate::metrics::GROUP_SYNC_LEADER).set(if lead { 1.0 } else { 0.0 });
        // The mark every instance's passes raise: a new holder resumes where the last left.
        let shared = state.last_update_group().await.ok().flatten();
        if let Some(mark) = shared {
            since = since.max(mark);
        }
        if lead {
            since = pass(&store, since).await;
        } else {
            metrics::gauge!(crate::metrics::GROUP_SYNC_LAG_SECONDS)
                .set(f64::from(now().saturating_sub(since)));
        }
    }
    if leading {
        if let Err(error) = store.sync_state().release_sync_lease(&holder).await {
            tracing::warn!(%error, "group sync: cannot release the lease (it expires by itself)");
        }
    }
    tracing::info!("group session sync stopped");
}

/// This process's name in the lease: pid and a random part (pids repeat across hosts).
fn lease_holder() -> String {
    format!("{}-{:016x}", std::process::id(), rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// How long a lease outlives its last renewal: several ticks, and at least 15 s, so a slow
/// pass or a paused process rarely lets a second instance in (which would be harmless: a
/// pass only writes the times a pass would write, and the mark never moves back).
pub(crate) fn lease_ttl(interval: Duration) -> u64 {
    let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    ms.saturating_mul(3).max(15_000)
}

/// One sync pass over the groups chatted since `since − OVERLAP_SECS`; returns the new mark
/// (the pass start time after a successful scan, `since` unchanged when the scan failed).
pub async fn pass(store: &Store, since: u32) -> u32 {
    let timer = std::time::Instant::now();
    let started = now();
    let groups = match store
        .groups()
        .chatted_since(since.saturating_sub(OVERLAP_SECS))
        .await
    {
        Ok(g) => g,
        Err(error) => {
            tracing::warn!(%error, "group sync: scan failed; will retry from the same mark");
            metrics::counter!(crate::metrics::GROUP_SYNC_RUNS, "result" => "failed").increment(1);
            metrics::gauge!(crate::metrics::GROUP_SYNC_LAG_SECONDS)
                .set(f64::from(started.saturating_sub(since)));
            return since;
        }
    };
    for (group, last_chated) in groups {
        let members = match store.groups().members(group).await {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, group, "group sync: cannot read members");
                continue;
            }
        };
        for member in members {
            if let Err(error) = bump(store, member, group, last_chated).await {
                tracing::warn!(%error, group, member, "group sync: cannot bump session");
                metrics::counter!(crate::metrics::GROUP_SYNC_FAILURES).increment(1);
            }
        }
    }
    if let Err(error) = store.sync_state().raise_last_update_group(started).await {
        tracing::warn!(%error, "group sync: cannot store last_update_group");
    }
    metrics::counter!(crate::metrics::GROUP_SYNC_RUNS, "result" => "ok").increment(1);
    metrics::gauge!(crate::metrics::GROUP_SYNC_LAG_SECONDS)
        .set(f64::from(now().saturating_sub(started)));
    metrics::histogram!(crate::metrics::GROUP_SYNC_SECONDS).record(timer.elapsed().as_secs_f64());
    started
}

/// Existing session of (member, group) in any status → `updated = last_chated` (status
/// untouched: a deleted session stays deleted, Q-Y04); none → addSession (status 0).
async fn bump(
    store: &Store,
    member: u32,
    group: u32,
    last_chated: u32,
) -> dbproxy_model::Result<()> {
    match store
        .sessions()
        .find(Db::Master, member, group, session::GROUP, true)
        .await?
    {
        Some(id) => {
            store.sessions().update(id, last_chated).await?;
        }
        None => {
            store.sessions().add(member, group, session::GROUP).await?;
        }
    }
    Ok(())
}
