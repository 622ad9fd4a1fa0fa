use thiserror::Error;

/// Why a handler could not produce its normal reply. Mapped to the protocol's failure
/// values (result_code 1, msg_id 0, empty lists) in one place: `command::execute`.
#[derive(Debug, Error)]
pub enum Error {
    /// A storage call failed (MySQL, Redis or msfs).
    #[error(transparent)]
    Model(#[from] dbproxy_model::Error),
}

impl Error {
    /// A backend already known to be down answered this request at once (its circuit
    /// breaker is open); the outage itself is logged by the model.
    pub(crate) fn is_known_outage(&self) -> bool {
        match self {
            Error::Model(e) => is_down(e),
        }
    }
}

/// `e` says only that a backend is known to be down: the model logs that outage once and
/// then in summaries, so callers do not log it per request.
pub(crate) fn is_down(e: &dbproxy_model::Error) -> bool {
    matches!(e.inner(), dbproxy_model::Error::Down { .. })
}
