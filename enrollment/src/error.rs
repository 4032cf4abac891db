//! The one error type of the enrollment crate.

use std::path::PathBuf;

/// Why a job could not be started, read or continued.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    /// The job specification is unusable (missing source, bad option).
    #[error("invalid job: {0}")]
    InvalidSpec(String),
    /// A job with this id exists with another spec.
    #[error("{0}")]
    AlreadyExists(String),
    /// No job has this id.
    #[error("no job {0:?}")]
    NotFound(String),
    /// A source or job file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A source file is not in the format it claims.
    #[error("{}: {detail}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with a byte offset or line where known.
        detail: String,
    },
    /// The sink (the matching service) failed as a whole, not per record.
    #[error("enrollment failed: {0}")]
    Sink(String),
}

impl EnrollmentError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EnrollmentError {
        let path = path.into();
        move |source| EnrollmentError::Io { path, source }
    }
}

impl From<biomatch_datasets::DatasetError> for EnrollmentError {
    fn from(e: biomatch_datasets::DatasetError) -> Self {
        match e {
            biomatch_datasets::DatasetError::Io { path, source } => EnrollmentError::Io { path, source },
            biomatch_datasets::DatasetError::Format { path, detail } => EnrollmentError::Format { path, detail },
        }
    }
}
