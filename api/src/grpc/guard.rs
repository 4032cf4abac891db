//! Authentication, authorisation and auditing of gRPC calls, as a tower
//! layer in front of every service. It is a layer rather than a tonic
//! interceptor because checking an API key may need the database (async).
//!
//! Each matching method needs one permission (see [`permission_for`]); the
//! caller proves it with `authorization: Bearer <access token>` or
//! `x-api-key: <key>`. Health and reflection stay open. Every matching call
//! (allowed or refused) is written to the audit log with its outcome; the
//! log holds method names and codes only, never templates.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use biomatch_platform::audit::AuditEvent;
use biomatch_platform::{Permission, Platform, PlatformError};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

use crate::rest::extract::authenticate;

/// The permission a method needs and the audit action it is logged as;
/// `None` for open services (health, reflection).
pub fn permission_for(path: &str) -> Option<(Permission, &'static str)> {
    let method = path.rsplit('/').next().unwrap_or_default();
    let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    use Permission::*;
    Some(match (service, method) {
        ("grpc.health.v1.Health", _) => return None,
        (s, _) if s.starts_with("grpc.reflection.") => return None,
        ("biomatch.v1.Matcher", "Enroll" | "EnrollStream") => (BiometricEnroll, "biometric.enroll"),
        ("biomatch.v1.Matcher", "Verify" | "StreamVerify") => (BiometricVerify, "biometric.verify"),
        ("biomatch.v1.Matcher", "Identify") => (BiometricIdentify, "biometric.identify"),
        ("biomatch.v1.Matcher", "Delete") => (BiometricDelete, "biometric.delete"),
        ("biomatch.v1.Matcher", "GetRecord" | "ListRecords") => (BiometricEnroll, "biometric.read_records"),
        ("biomatch.v1.Matcher", "GalleryStats" | "GetCalibration") => (BiometricVerify, "biometric.stats"),
        ("biomatch.v1.Matcher", "Calibrate") => (AdminSystem, "biometric.calibrate"),
        ("biomatch.v1.Matcher", "OptimizeGallery") => (AdminSystem, "biometric.optimize"),
        ("biomatch.v1.EnrollmentJobs", _) => (BiometricEnroll, "biometric.enrollment_job"),
        // Anything new is closed until it is classified here.
        _ => (AdminSystem, "grpc.unclassified"),
    })
}

/// Builds [`GrpcGuard`]s.
#[derive(Clone)]
pub struct GuardLayer {
    platform: Platform,
    anonymous: bool,
}

impl GuardLayer {
    /// Checks credentials unless `anonymous`; audits either way.
    pub fn new(platform: Platform, anonymous: bool) -> GuardLayer {
        GuardLayer { platform, anonymous }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GrpcGuard<S>;

    fn layer(&self, inner: S) -> GrpcGuard<S> {
        GrpcGuard {
            inner,
            platform: self.platform.clone(),
            anonymous: self.anonymous,
        }
    }
}

/// The guard in front of the gRPC services.
#[derive(Clone)]
pub struct GrpcGuard<S> {
    inner: S,
    platform: Platform,
    anonymous: bool,
}

fn refuse(e: &PlatformError) -> http::Response<Body> {
    let status = match e {
        PlatformError::Forbidden { .. } => Status::permission_denied(e.to_string()),
        e if e.is_internal() => Status::internal("authentication store failed"),
        _ => Status::unauthenticated(format!("{} ({})", e, e.code())),
    };
    status.into_http()
}

impl<S, B> Service<http::Request<B>> for GrpcGuard<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The ready service is the one polled; the clone replaces it.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let platform = self.platform.clone();
        let anonymous = self.anonymous;
        Box::pin(async move {
            let Some((perm, action)) = permission_for(req.uri().path()) else {
                return inner.call(req).await;
            };
            let trace = uuid::Uuid::new_v4().to_string();
            let mut resp = biomatch_platform::TRACE_ID
                .scope(trace.clone(), guarded(inner, req, platform, anonymous, perm, action))
                .await?;
            if let Ok(v) = http::HeaderValue::from_str(&trace) {
                resp.headers_mut().insert("x-trace-id", v);
            }
            Ok(resp)
        })
    }
}

/// Authenticates, authorises, runs and audits one call.
async fn guarded<S, B>(
    mut inner: S,
    req: http::Request<B>,
    platform: Platform,
    anonymous: bool,
    perm: Permission,
    action: &'static str,
) -> Result<http::Response<Body>, S::Error>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    let ip = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(|c| c.remote_addr())
        .map(|a| a.ip().to_string());
    // Owned copies: the request body is not Sync, so no borrow of
    // the request may live across an await.
    let (authorization, api_key) = {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        (header("authorization"), header("x-api-key"))
    };
    let caller = if anonymous && authorization.is_none() && api_key.is_none() {
        None
    } else {
        let checked = match authenticate(&platform, authorization.as_deref(), api_key.as_deref()).await {
            // Authenticated but not allowed: the refusal is the caller's.
            Ok(p) => match p.require(perm) {
                Ok(()) => Ok(p),
                Err(e) => Err((AuditEvent::by(&p, action, "denied"), e)),
            },
            Err(e) => Err((AuditEvent::anonymous(action, "denied"), e)),
        };
        match checked {
            Ok(p) => Some(p),
            Err((event, e)) => {
                platform.audit_deferred(event.detail(e.code()).ip(ip.as_deref())).await;
                return Ok(refuse(&e));
            }
        }
    };
    let resp = inner.call(req).await?;
    // Unary errors come back trailers-only, with the status in the
    // headers; a success's status follows in the trailers. For a stream the
    // outcome is how it started (OK, or the refusal of its first message).
    let outcome = match resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
        None | Some("0") => "OK".to_string(),
        Some(code) => format!("{:?}", tonic::Code::from(code.parse::<i32>().unwrap_or(2))),
    };
    let event = match &caller {
        Some(p) => AuditEvent::by(p, action, &outcome),
        None => AuditEvent::anonymous(action, &outcome),
    };
    platform.audit_deferred(event.ip(ip.as_deref())).await;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_matching_method_needs_a_permission() {
        assert_eq!(
            permission_for("/biomatch.v1.Matcher/Identify"),
            Some((Permission::BiometricIdentify, "biometric.identify"))
        );
        assert_eq!(
            permission_for("/biomatch.v1.Matcher/Enroll").unwrap().0,
            Permission::BiometricEnroll
        );
        assert_eq!(
            permission_for("/biomatch.v1.EnrollmentJobs/StartJob").unwrap().0,
            Permission::BiometricEnroll
        );
        assert_eq!(
            permission_for("/biomatch.v1.Matcher/Novel").unwrap().0,
            Permission::AdminSystem
        );
        assert_eq!(permission_for("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            permission_for("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            None
        );
    }
}
