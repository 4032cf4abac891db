//! Request extractors: the authenticated caller, the client address, and
//! JSON bodies and query strings whose rejections use the error body.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use biomatch_platform::{PlatformError, Principal};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// The authenticated caller: `Authorization: Bearer <access token>`, or an
/// API key as `X-API-Key: <key>` (or `Authorization: Bearer bmk_…`).
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let p = authenticate(&state.platform, header("authorization"), header("x-api-key")).await?;
        Ok(Caller(p))
    }
}

/// Authenticates from the `authorization` and `x-api-key` header values;
/// shared by REST and the gRPC guard.
pub async fn authenticate(
    platform: &biomatch_platform::Platform,
    authorization: Option<&str>,
    api_key: Option<&str>,
) -> Result<Principal, PlatformError> {
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        return platform.authenticate_api_key(key).await;
    }
    let Some(auth) = authorization else {
        return Err(PlatformError::unauthenticated(
            "AUTH_TOKEN_MISSING",
            "send an access token (Authorization: Bearer) or an API key (X-API-Key)",
        ));
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            PlatformError::unauthenticated("AUTH_TOKEN_INVALID", "Authorization must be 'Bearer <token>'")
        })?;
    if token.starts_with(biomatch_platform::tokens::API_KEY_PREFIX) {
        platform.authenticate_api_key(token).await
    } else {
        platform.authenticate_token(token).await
    }
}

/// The client's IP address (the TCP peer).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// The TCP peer's address from a request's extensions ("unknown" without one).
pub fn client_ip(ext: &axum::http::Extensions) -> String {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A JSON body; malformed bodies get `VAL_MALFORMED_BODY`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "VAL_UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/json",
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "VAL_MALFORMED_BODY",
                e.body_text(),
            )),
        }
    }
}

/// A query string; malformed ones get `VAL_MALFORMED_QUERY`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "VAL_MALFORMED_QUERY",
                e.body_text(),
            )),
        }
    }
}
