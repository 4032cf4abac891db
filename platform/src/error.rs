//! The platform's one error type. Each variant knows its stable error code
//! (`AUTH_*`, `AUTHZ_*`, `VAL_*`, `RES_*`, `RATE_*`, `INT_*`); the REST and
//! gRPC adapters map it to a status once, in one place each.

/// Why a platform operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The caller is not (or no longer) authenticated.
    #[error("{message}")]
    Unauthenticated {
        /// `AUTH_*` code.
        code: &'static str,
        /// Human-readable reason.
        message: String,
    },
    /// The account is locked, by an administrator or after repeated failures.
    #[error("{message}")]
    Locked {
        /// Human-readable reason.
        message: String,
        /// Seconds until a failure lockout ends; `None` for an administrator's lock.
        retry_after_secs: Option<u64>,
    },
    /// Authenticated, but the role or API key scopes lack a permission.
    #[error("{message}")]
    Forbidden {
        /// Human-readable reason, naming the missing permission.
        message: String,
    },
    /// A request field is missing or invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The resource does not exist (or is not visible to the caller).
    #[error("{what} not found")]
    NotFound {
        /// Which kind of resource.
        what: &'static str,
    },
    /// The request conflicts with existing state (for example a taken email).
    #[error("{message}")]
    Conflict {
        /// Human-readable reason.
        message: String,
    },
    /// Too many requests for this route and client.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failed.
    #[error("cache error: {0}")]
    Cache(#[from] redis::RedisError),
    /// Anything else that is our fault.
    #[error("{0}")]
    Internal(String),
}

impl PlatformError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PlatformError::Unauthenticated { code, .. } => code,
            PlatformError::Locked { .. } => "AUTH_ACCOUNT_LOCKED",
            PlatformError::Forbidden { .. } => "AUTHZ_FORBIDDEN",
            PlatformError::Invalid { .. } => "VAL_INVALID_FIELD",
            PlatformError::NotFound { .. } => "RES_NOT_FOUND",
            PlatformError::Conflict { .. } => "RES_CONFLICT",
            PlatformError::RateLimited { .. } => "RATE_LIMIT_EXCEEDED",
            PlatformError::Database(_) => "INT_DATABASE",
            PlatformError::Cache(_) => "INT_CACHE",
            PlatformError::Internal(_) => "INT_INTERNAL",
        }
    }

    /// An authentication failure with a code.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        PlatformError::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    /// A field validation failure.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        PlatformError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True for failures that are the server's fault (logged, 5xx).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            PlatformError::Database(_) | PlatformError::Cache(_) | PlatformError::Internal(_)
        )
    }
}

/// Shorthand for platform results.
pub type Result<T> = std::result::Result<T, PlatformError>;
