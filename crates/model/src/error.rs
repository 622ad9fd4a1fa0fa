//! The model crate's error type.

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
    /// A MySQL statement failed.
    #[error("mysql: {context}: {source}")]
    Mysql {
        context: String,
        #[source]
        source: diesel::result::Error,
    },
    /// A Redis command failed.
    #[error("redis: {context}: {message}")]
    Redis { context: String, message: String },
    /// The msfs HTTP call failed.
    #[error("http: {context}: {message}")]
    Http { context: String, message: String },
    /// A requested row or key does not exist (only where the caller must distinguish it).
    #[error("not found: {0}")]
    NotFound(String),
    /// Invalid configuration or input that never reaches a backend.
    #[error("invalid: {0}")]
    Invalid(String),
}

impl Error {
    /// True when the backend could not be reached / answered in time (pool exhausted,
    /// timeout, broken connection, Redis down) as opposed to a logical failure.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Pool { .. } | Error::Timeout { .. } | Error::Http { .. } => true,
            Error::Redis { .. } => true,
            Error::Mysql { source, .. } => matches!(
                source,
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection
                        | diesel::result::DatabaseErrorKind::Unknown,
                    _
                ) | diesel::result::Error::BrokenTransactionManager
            ),
            Error::NotFound(_) | Error::Invalid(_) => false,
        }
    }

    /// True for MariaDB's "Deadlock found" (1213) and "Lock wait timeout exceeded" (1205):
    /// the transaction was rolled back (or the statement abandoned) by the server and may
    /// simply be run again.
    pub fn is_lock_conflict(&self) -> bool {
        match self {
            Error::Mysql {
                source: diesel::result::Error::DatabaseError(_, info),
                ..
            } => {
                let m = info.message();
                m.contains("Deadlock found") || m.contains("Lock wait timeout exceeded")
            }
            _ => false,
        }
    }

    /// A copy of this error for the other requests of a failed batch. Keeps the kind, the
    /// context and the message, so `is_unavailable` and `is_lock_conflict` answer the same;
    /// a diesel error other than a database error becomes a database error of kind
    /// `Unknown` carrying its text.
    pub fn duplicate(&self) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as D};
        match self {
            Error::Pool { pool, reason } => Error::Pool {
                pool,
                reason: reason.clone(),
            },
            Error::Timeout { what, after } => Error::Timeout {
                what: what.clone(),
                after: *after,
            },
            Error::Mysql { context, source } => {
                let source = match source {
                    D::NotFound => D::NotFound,
                    D::BrokenTransactionManager => D::BrokenTransactionManager,
                    D::DatabaseError(kind, info) => {
                        D::DatabaseError(*kind, Box::new(info.message().to_owned()))
                    }
                    other => {
                        D::DatabaseError(DatabaseErrorKind::Unknown, Box::new(other.to_string()))
                    }
                };
                Error::Mysql {
                    context: context.clone(),
                    source,
                }
            }
            Error::Redis { context, message } => Error::Redis {
                context: context.clone(),
                message: message.clone(),
            },
            Error::Http { context, message } => Error::Http {
                context: context.clone(),
                message: message.clone(),
            },
            Error::NotFound(s) => Error::NotFound(s.clone()),
            Error::Invalid(s) => Error::Invalid(s.clone()),
        }
    }

    /// Wrap a diesel error with context.
    pub fn mysql(context: impl Into<String>, source: diesel::result::Error) -> Self {
        Error::Mysql {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn redis(context: impl Into<String>, e: fred::error::Error) -> Self {
        if matches!(e.kind(), fred::error::ErrorKind::Timeout) {
            return Error::Timeout {
                what: format!("redis {}", context.into()),
                after: Duration::ZERO,
            };
        }
        Error::Redis {
            context: context.into(),
            message: e.to_string(),
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
        Error::Mysql {
            context: String::new(),
            source,
        }
    }
}
