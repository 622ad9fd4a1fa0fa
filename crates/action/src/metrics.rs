//! Metrics of the request handling (the `metrics` facade; see `dbproxy_model::metrics`).

dbproxy_model::declare_metrics! {
    /// Requests handled, by command name (CID_...) and outcome: ok (answered normally),
    /// failure (the failure reply, a backend failed), no_reply (the command, or this case of
    /// it, is not answered), undecodable (the body did not parse).
    counter REQUESTS = "dbproxy_requests_total";
    /// Time from a request's decoding to its reply, by command name.
    histogram REQUEST_SECONDS = "dbproxy_request_duration_seconds";
    /// Logins refused for a wrong password or an unknown name.
    counter LOGIN_FAILURES = "dbproxy_login_failures_total";
    /// Logins refused because the name is locked out after repeated failures.
    counter LOGIN_LOCKOUTS = "dbproxy_login_lockouts_total";
    /// Passes of the group-session sync, by result (ok, failed: the scan failed and the
    /// pass is retried from the same mark).
    counter GROUP_SYNC_RUNS = "dbproxy_group_sync_runs_total";
    /// Sessions the group-session sync could not bump (retried on its next pass).
    counter GROUP_SYNC_FAILURES = "dbproxy_group_sync_failures_total";
    /// Seconds between now and the group-session sync's mark after its last pass: how far
    /// behind recent sessions of groups may be.
    gauge GROUP_SYNC_LAG_SECONDS = "dbproxy_group_sync_lag_seconds";
    /// Time of one group-session sync pass.
    histogram GROUP_SYNC_SECONDS = "dbproxy_group_sync_duration_seconds";
    /// 1 while this instance holds the group-sync lease and runs the passes, 0 while another
    /// instance does.
    gauge GROUP_SYNC_LEADER = "dbproxy_group_sync_leader";
}

/// The counters without per-request labels, at 0 from the start (rates and alerts see
/// them before their first event).
pub(crate) fn register_series() {
    ::metrics::counter!(LOGIN_FAILURES).increment(0);
    ::metrics::counter!(LOGIN_LOCKOUTS).increment(0);
    ::metrics::counter!(GROUP_SYNC_FAILURES).increment(0);
    for result in ["ok", "failed"] {
        ::metrics::counter!(GROUP_SYNC_RUNS, "result" => result).increment(0);
    }
}
