//! The REST error body and the one mapping from [`PlatformError`] to HTTP.
//!
//! Every failure answers `{"error": {"code", "message", "details",
//! "trace_id", "timestamp"}}`; `code` is stable (`AUTH_*`, `AUTHZ_*`,
//! `VAL_*`, `RES_*`, `RATE_*`, `INT_*`), `message` is for people.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use biomatch_platform::PlatformError;
use serde::Serialize;
use serde_json::{Value, json};
use tracing::error;
use utoipa::ToSchema;

pub use biomatch_platform::TRACE_ID;

/// The current request's trace id, or "-" outside a request.
pub fn trace_id() -> String {
    biomatch_platform::trace_id().unwrap_or_else(|| "-".into())
}

/// The error object.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, such as `AUTH_TOKEN_EXPIRED`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Structured detail (for validation errors: the field).
    #[schema(value_type = Object)]
    pub details: Value,
    /// The request's trace id (also the `x-trace-id` header).
    pub trace_id: String,
    /// When, RFC 3339 UTC.
    pub timestamp: String,
}

/// Every error response's body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }
}

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> ApiError {
        let code = e.code();
        let (status, details, retry_after) = match &e {
            PlatformError::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, json!({}), None),
            PlatformError::Locked { retry_after_secs, .. } => (StatusCode::LOCKED, json!({}), *retry_after_secs),
            PlatformError::Forbidden { .. } => (StatusCode::FORBIDDEN, json!({}), None),
            PlatformError::Invalid { field, .. } => (StatusCode::BAD_REQUEST, json!({ "field": field }), None),
            PlatformError::NotFound { .. } => (StatusCode::NOT_FOUND, json!({}), None),
            PlatformError::Conflict { .. } => (StatusCode::CONFLICT, json!({}), None),
            PlatformError::RateLimited { retry_after_secs } => {
                (StatusCode::TOO_MANY_REQUESTS, json!({}), Some(*retry_after_secs))
            }
            PlatformError::Database(_) | PlatformError::Cache(_) | PlatformError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, json!({}), None)
            }
        };
        let message = if e.is_internal() {
            error!(error = %e, trace_id = %trace_id(), "internal error");
            "internal error; quote the trace id when reporting it".to_string()
        } else {
            e.to_string()
        };
        ApiError {
            status,
            code,
            message,
            details,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
                trace_id: trace_id(),
                timestamp: rfc3339(biomatch_platform::now_ms()),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ` (days-to-civil after H. Hinnant).
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_128_496_789), "2026-12-01T12:34:56.789Z");
    }

    #[test]
    fn platform_errors_map_to_statuses() {
        let e: ApiError = PlatformError::RateLimited { retry_after_secs: 7 }.into();
        assert_eq!(
            (e.status, e.code, e.retry_after),
            (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED", Some(7))
        );
        let e: ApiError = PlatformError::invalid("email", "bad").into();
        assert_eq!(
            (e.status, e.details["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("email"))
        );
        let e: ApiError = PlatformError::Internal("disk on fire".into()).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("disk"), "internal detail stays in the log");
    }
}
