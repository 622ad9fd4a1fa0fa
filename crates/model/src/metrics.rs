//! Metrics the storage layer records through the [`metrics`] facade: a service that embeds
//! the model installs a recorder (db-proxy: Prometheus) to see them; without one they cost
//! nothing. Each metric is declared once, in [`declare_metrics!`] lists: its name, its kind
//! and its doc comment, which is also its help text.

/// Declares metric name constants and a `describe()` function that hands each one's doc
/// comment to the installed recorder as its help text. Used by every crate of db-proxy that
/// records metrics, so a name, its kind and its help are written in exactly one place.
#[macro_export]
macro_rules! declare_metrics {
    ($( $(#[doc = $doc:literal])+ $kind:ident $name:ident = $metric:literal; )*) => {
        $( $(#[doc = $doc])+ pub const $name: &str = $metric; )*

        /// Every metric name of this list, with its kind (`counter`, `gauge`, `histogram`).
        pub const ALL: &[(&str, &str)] = &[$( ($metric, stringify!($kind)) ),*];

        /// Hands every metric's help text (its doc comment) to the installed recorder.
        pub fn describe() {
            $( $crate::declare_metrics!(@describe $kind, $metric, concat!($($doc),+)); )*
        }
    };
    (@describe counter, $metric:literal, $help:expr) => {
        ::metrics::describe_counter!($metric, $help.trim())
    };
    (@describe gauge, $metric:literal, $help:expr) => {
        ::metrics::describe_gauge!($metric, $help.trim())
    };
    (@describe histogram, $metric:literal, $help:expr) => {
        ::metrics::describe_histogram!($metric, $help.trim())
    };
}

declare_metrics! {
    /// Time to get a pooled MySQL connection, by pool (master, slave).
    histogram MYSQL_CHECKOUT_SECONDS = "dbproxy_mysql_checkout_seconds";
    /// MySQL waits that ran out, by pool and stage (checkout: no free connection in time;
    /// unit: a unit of work did not finish in time).
    counter MYSQL_TIMEOUTS = "dbproxy_mysql_timeouts_total";
    /// MySQL connections discarded after a failure or a timeout, by pool.
    counter MYSQL_DISCARDED = "dbproxy_mysql_discarded_total";
    /// Plain reads run on the master because the slave pool's breaker was open (the replica
    /// is down); reads go back to the slave once it answers.
    counter MYSQL_SLAVE_FALLBACKS = "dbproxy_mysql_slave_fallbacks_total";
    /// MySQL connections the pool holds now, by pool.
    gauge MYSQL_POOL_CONNECTIONS = "dbproxy_mysql_pool_connections";
    /// Pooled MySQL connections idle now, by pool.
    gauge MYSQL_POOL_IDLE = "dbproxy_mysql_pool_idle";
    /// Calls waiting for a pooled MySQL connection now, by pool.
    gauge MYSQL_POOL_WAITING = "dbproxy_mysql_pool_waiting";
    /// Redis calls (a command, a pipeline or a script), by instance (label `redis`:
    /// unread, group_set, token, group_member).
    counter REDIS_COMMANDS = "dbproxy_redis_commands_total";
    /// Redis calls that failed (timeouts included), by instance (label `redis`).
    counter REDIS_ERRORS = "dbproxy_redis_errors_total";
    /// Redis calls that timed out, by instance (label `redis`).
    counter REDIS_TIMEOUTS = "dbproxy_redis_timeouts_total";
    /// Reconnections of Redis clients, by endpoint (`host:port/db`; instances with the same
    /// endpoint share its connections).
    counter REDIS_RECONNECTS = "dbproxy_redis_reconnects_total";
    /// msgId allocations whose `WAIT` for `replica_acks` replicas ran out before they all
    /// acknowledged (the send went on; a failover right then could reuse those msgIds).
    counter REDIS_REPLICA_ACK_TIMEOUTS = "dbproxy_redis_replica_ack_timeouts_total";
    /// msfs HTTP calls, by operation (upload, download).
    counter MSFS_CALLS = "dbproxy_msfs_calls_total";
    /// msfs HTTP calls that failed, by operation.
    counter MSFS_FAILURES = "dbproxy_msfs_failures_total";
    /// 1 while a backend is known to be down (its circuit breaker is open), by backend.
    gauge BACKEND_DOWN = "dbproxy_backend_down";
    /// Calls answered at once because their backend was known to be down, by backend.
    counter BACKEND_FAILED_FAST = "dbproxy_backend_failed_fast_total";
    /// Time of one run of a stage of the coalesced paths (queue waits, batches, their
    /// statements and Redis calls), by stage.
    histogram STAGE_SECONDS = "dbproxy_stage_seconds";
    /// Requests served by one run of a stage of the coalesced paths (the batch size), by
    /// stage.
    histogram STAGE_BATCH_SIZE = "dbproxy_stage_batch_size";
}
