use thiserror::Error;

/// Why a handler could not produce its normal reply. Mapped to the protocol's failure
/// values (result_code 1, msg_id 0, empty lists) in one place: `command::execute`.
#[derive(Debug, Error)]
pub enum Error {
    /// A storage call failed (MySQL, Redis or msfs).
    #[error(transparent)]
    Model(#[from] dbproxy_model::Error),
}
