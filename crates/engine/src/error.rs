//! The engine API's error, apart so that the actors and the engine both use it without
//! importing each other.

use podport_journal::JournalError;

use crate::spec::AddPodError;

/// Errors of the engine's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    AddPod(#[from] AddPodError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the engine has stopped")]
    Stopped,
    #[error("the engine could not start: {0}")]
    Start(String),
}
