//! The service's one error type, and its single mapping to gRPC status.

use biomatch_index::IndexError;
use biomatch_matcher::MatcherError;

/// A failed service call, by what the client should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; retrying it unchanged will fail again.
    #[error("{0}")]
    InvalidArgument(String),
    /// The subject or record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The record id is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The system is not in a state to answer (for example a threshold by
    /// FMR asked of a modality that was never calibrated).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The feature is not available (yet).
    #[error("{0}")]
    Unimplemented(String),
    /// Stored data is damaged and is not served.
    #[error("{0}")]
    DataLoss(String),
    /// The caller went away or its deadline passed.
    #[error("request cancelled")]
    Cancelled,
    /// A server-side failure (I/O, a worker that died).
    #[error("{0}")]
    Internal(String),
}

impl From<MatcherError> for ServiceError {
    fn from(e: MatcherError) -> Self {
        match e {
            MatcherError::Unsupported(m) => ServiceError::Unimplemented(m),
            other => ServiceError::InvalidArgument(other.to_string()),
        }
    }
}

impl From<IndexError> for ServiceError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::AlreadyExists(_) => ServiceError::AlreadyExists(e.to_string()),
            IndexError::RecordNotFound(_) => ServiceError::NotFound(e.to_string()),
            IndexError::Dimension { .. } => ServiceError::InvalidArgument(e.to_string()),
            IndexError::Corrupt { .. } | IndexError::Unavailable { .. } => ServiceError::DataLoss(e.to_string()),
            IndexError::Cancelled => ServiceError::Cancelled,
            IndexError::Io { .. } | IndexError::Locked(_) => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<biomatch_enrollment::EnrollmentError> for ServiceError {
    fn from(e: biomatch_enrollment::EnrollmentError) -> Self {
        use biomatch_enrollment::EnrollmentError as E;
        match e {
            E::InvalidSpec(m) => ServiceError::InvalidArgument(m),
            E::NotFound(_) => ServiceError::NotFound(e.to_string()),
            E::AlreadyExists(m) => ServiceError::AlreadyExists(m),
            E::Format { .. } => ServiceError::InvalidArgument(e.to_string()),
            E::Io { .. } | E::Sink(_) => ServiceError::Internal(e.to_string()),
        }
    }
}

impl ServiceError {
    /// The status name clients see (`INVALID_ARGUMENT`, ...), for reports.
    pub fn code_name(&self) -> &'static str {
        match self.code() {
            tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
            tonic::Code::NotFound => "NOT_FOUND",
            tonic::Code::AlreadyExists => "ALREADY_EXISTS",
            tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
            tonic::Code::Unimplemented => "UNIMPLEMENTED",
            tonic::Code::DataLoss => "DATA_LOSS",
            tonic::Code::Cancelled => "CANCELLED",
            _ => "INTERNAL",
        }
    }

    /// The gRPC status code for this error.
    pub fn code(&self) -> tonic::Code {
        match self {
            ServiceError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            ServiceError::NotFound(_) => tonic::Code::NotFound,
            ServiceError::AlreadyExists(_) => tonic::Code::AlreadyExists,
            ServiceError::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            ServiceError::Unimplemented(_) => tonic::Code::Unimplemented,
            ServiceError::DataLoss(_) => tonic::Code::DataLoss,
            ServiceError::Cancelled => tonic::Code::Cancelled,
            ServiceError::Internal(_) => tonic::Code::Internal,
        }
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}
