//! The model crate's error type.

use std::sync::Arc;
use std::time::Duration;

/// Result alias of the model crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a storage call can fail with. Context strings say which key / table / id.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No pooled connection within the pool wait timeout (or the pool could not create one).
    #[error("{pool} pool: no connection: {reason}")]
    Pool { pool: &'static str, reason: String },
    /// A backend call did not finish in time.
    #[error("timeout after {after:?}: {what}")]
    Timeout { what: String, after: Duration },
    /// A MySQL statement failed (BEGIN and the statements of a transaction included: the
    /// transaction was then rolled back).
    #[error("mysql: {context}: {source}")]
    Mysql {
        context: String,
        /// What the failure means for the caller, classified where the error is created.
        kind: MysqlKind,
        #[source]
        source: diesel::result::Error,
    },
    /// The COMMIT of a transaction failed: it may or may not have been committed.
    #[error("mysql: COMMIT: {source}")]
    Commit {
        kind: MysqlKind,
        #[source]
        source: diesel::result::Error,
    },
    /// A Redis command failed, or answered what the caller cannot use (then no source).
    #[error("redis: {context}: {message}")]
    Redis {
        context: String,
        message: String,
        #[source]
        source: Option<fred::error::Error>,
    },
    /// The msfs HTTP call failed, or answered what the caller cannot use (then no source).
    #[error("http: {context}: {message}")]
    Http {
        context: String,
        message: String,
        #[source]
        source: Option<reqwest::Error>,
    },
    /// A requested row or key does not exist (only where the caller must distinguish it).
    #[error("not found: {0}")]
    NotFound(String),
    /// Invalid configuration or input that never reaches a backend.
    #[error("invalid: {0}")]
    Invalid(String),
    /// An internal fault of the model (a coalescer stopped, a batch answered too few
    /// requests, a message reached storage without its id).
    #[error("internal: {0}")]
    Internal(String),
    /// The backend is known to be down (its circuit breaker is open): the call was answered
    /// at once, nothing was sent to it.
    #[error("{backend} is down (for {since:?}); not tried")]
    Down { backend: String, since: Duration },
    /// One error shared by every request of a failed batch; it answers every question as
    /// the error inside does.
    #[error(transparent)]
    Shared(Arc<Error>),
}

/// What a failed MySQL statement means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MysqlKind {
    /// Deadlock (1213) or lock wait timeout (1205): the server rolled the transaction (or
    /// the statement) back; running it again may succeed.
    LockConflict,
    /// The connection failed (I/O error, closed by the server, protocol out of step):
    /// nothing can be said about the statement, and the backend may be gone.
    Connection,
    /// Any other failure.
    Other,
}

impl MysqlKind {
    /// Classify a diesel error. diesel-async's mysql backend keeps only the server's message
    /// of a server error (the error code of mysql_async is dropped: every code but a few
    /// constraint violations becomes `DatabaseErrorKind::Unknown`), so the message is the
    /// only signal; this is the one place that reads it.
    fn of(source: &diesel::result::Error) -> Self {
        match source {
            diesel::result::Error::DatabaseError(_, info) => {
                let m = info.message();
                if m.contains("Deadlock found") || m.contains("Lock wait timeout exceeded") {
                    MysqlKind::LockConflict
                } else if (m.starts_with("Input/output error") && !m.contains("packet too large"))
                    || m.contains("Connection to the server is closed")
                    || m.contains("Packet out of order")
                    || m.contains("Server shutdown in progress")
                {
                    // mysql_async's I/O errors (but a request above max_allowed_packet, which
                    // it reports as one) and the driver errors of a broken connection.
                    MysqlKind::Connection
                } else {
                    MysqlKind::Other
                }
            }
            _ => MysqlKind::Other,
        }
    }
}

impl Error {
    /// The error itself: the inner one of a [`Error::Shared`].
    pub fn inner(&self) -> &Error {
        match self {
            Error::Shared(e) => e.inner(),
            e => e,
        }
    }

    /// True when the backend could not be reached / answered in time (pool exhausted,
    /// timeout, broken connection, Redis down) as opposed to a logical failure.
    pub fn is_unavailable(&self) -> bool {
        match self.inner() {
            Error::Pool { .. } | Error::Timeout { .. } | Error::Http { .. } => true,
            Error::Redis { .. } | Error::Down { .. } => true,
            Error::Mysql { source, .. } | Error::Commit { source, .. } => matches!(
                source,
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection
                        | diesel::result::DatabaseErrorKind::Unknown,
                    _
                ) | diesel::result::Error::BrokenTransactionManager
            ),
            Error::NotFound(_) | Error::Invalid(_) | Error::Internal(_) | Error::Shared(_) => false,
        }
    }

    /// True when a MySQL statement failed because its connection did (I/O error, closed by
    /// the server, protocol out of step), not because the server refused it: what the MySQL
    /// circuit breakers count, beside failed checkouts and timed-out units of work.
    pub fn is_connection_failure(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error as D};
        match self.inner() {
            Error::Mysql { kind, source, .. } | Error::Commit { kind, source } => {
                *kind == MysqlKind::Connection
                    || matches!(
                        source,
                        D::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
                            | D::BrokenTransactionManager
                    )
            }
            _ => false,
        }
    }

    /// True when a Redis call found the server not answering (a timeout, an I/O error, a
    /// dropped connection): what the Redis circuit breakers count. An error reply, or the
    /// fast failure of an open breaker, is not.
    pub fn is_redis_outage(&self) -> bool {
        match self.inner() {
            Error::Timeout { .. } => true,
            Error::Redis {
                source: Some(e), ..
            } => matches!(
                e.kind(),
                fred::error::ErrorKind::IO
                    | fred::error::ErrorKind::Canceled
                    | fred::error::ErrorKind::Backpressure
            ),
            _ => false,
        }
    }

    /// True for MariaDB's "Deadlock found" (1213) and "Lock wait timeout exceeded" (1205):
    /// the transaction was rolled back (or the statement abandoned) by the server and may
    /// simply be run again.
    pub fn is_lock_conflict(&self) -> bool {
        matches!(
            self.inner(),
            Error::Mysql {
                kind: MysqlKind::LockConflict,
                ..
            } | Error::Commit {
                kind: MysqlKind::LockConflict,
                ..
            }
        )
    }

    /// This error for every one of `n` requests (at least one): the error itself for one,
    /// else one shared error, without copying or losing anything of it.
    pub(crate) fn fan_out(self, n: usize) -> Vec<Error> {
        if n <= 1 {
            return vec![self];
        }
        let shared = match self {
            Error::Shared(e) => e,
            e => Arc::new(e),
        };
        (0..n).map(|_| Error::Shared(shared.clone())).collect()
    }

    /// Wrap a diesel error with context.
    pub fn mysql(context: impl Into<String>, source: diesel::result::Error) -> Self {
        Error::Mysql {
            context: context.into(),
            kind: MysqlKind::of(&source),
            source,
        }
    }

    /// A failed COMMIT.
    pub(crate) fn commit(source: diesel::result::Error) -> Self {
        Error::Commit {
            kind: MysqlKind::of(&source),
            source,
        }
    }

    /// A fred error (a timeout becomes [`Error::Timeout`]).
    pub(crate) fn redis(context: impl Into<String>, e: fred::error::Error) -> Self {
        Self::redis_after(context, e, Duration::ZERO)
    }

    /// A fred error of a call bounded by `after`.
    pub(crate) fn redis_after(
        context: impl Into<String>,
        e: fred::error::Error,
        after: Duration,
    ) -> Self {
        if matches!(e.kind(), fred::error::ErrorKind::Timeout) {
            return Error::Timeout {
                what: format!("redis {}", context.into()),
                after,
            };
        }
        Error::Redis {
            context: context.into(),
            message: e.to_string(),
            source: Some(e),
        }
    }

    /// A Redis answer the caller cannot use.
    pub(crate) fn redis_reply(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Redis {
            context: context.into(),
            message: message.into(),
            source: None,
        }
    }
}

/// Extension to attach context to diesel results: `query.load(c).await.ctx("IMUser by id")?`.
pub trait MysqlResultExt<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> MysqlResultExt<T> for std::result::Result<T, diesel::result::Error> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| Error::mysql(context, e))
    }
}

impl From<diesel::result::Error> for Error {
    fn from(source: diesel::result::Error) -> Self {
        Error::mysql(String::new(), source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(message: &str) -> diesel::result::Error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(message.to_owned()),
        )
    }

    #[test]
    fn lock_conflicts_are_classified_once_and_shared_errors_answer_alike() {
        let deadlock = "Deadlock found when trying to get lock; try restarting transaction";
        assert!(Error::mysql("insert", server(deadlock)).is_lock_conflict());
        assert!(Error::mysql("x", server("Lock wait timeout exceeded; try")).is_lock_conflict());
        assert!(Error::commit(server(deadlock)).is_lock_conflict());
        assert!(!Error::mysql("x", server("Duplicate entry")).is_lock_conflict());
        let shared = Error::mysql("insert", server(deadlock)).fan_out(3);
        assert_eq!(shared.len(), 3);
        assert!(shared
            .iter()
            .all(|e| e.is_lock_conflict() && e.is_unavailable()));
        assert_eq!(
            shared[0].to_string(),
            format!("mysql: insert: {deadlock}"),
            "a shared error shows as the error inside"
        );
        let one = Error::Invalid("x".into()).fan_out(1);
        assert!(matches!(&one[..], [Error::Invalid(_)]));
        assert!(!Error::Internal("stopped".into()).is_unavailable());
    }
}
