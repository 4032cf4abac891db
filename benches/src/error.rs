//! The harness's one error type.

use std::path::PathBuf;

use biomatch_datasets::DatasetError;
use biomatch_matcher::MatcherError;

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The flags do not describe a run.
    #[error("{0}")]
    Usage(String),
    /// An input could not be used.
    #[error("{0}")]
    Input(String),
    /// A file could not be read or written.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, #[source] std::io::Error),
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// The server could not be reached or refused the set-up.
    #[error("server: {0}")]
    Server(String),
}

impl From<DatasetError> for BenchError {
    fn from(e: DatasetError) -> Self {
        BenchError::Input(e.to_string())
    }
}

impl From<MatcherError> for BenchError {
    fn from(e: MatcherError) -> Self {
        BenchError::Input(e.to_string())
    }
}
