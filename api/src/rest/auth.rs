//! `/api/v1/auth`: registration, login, token refresh, logout, TOTP and API
//! keys. Thin adapters: validate the shape, call the platform, convert.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use biomatch_platform::api_keys::{ApiKeyInfo, CreatedApiKey, NewApiKey};
use biomatch_platform::auth::{TokenPair, TotpSetup};
use biomatch_platform::users::{NewUser, User};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Caller, ClientIp};

/// Login credentials.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// The current 6-digit code, for accounts with TOTP enabled.
    #[serde(default)]
    pub totp_code: Option<String>,
}

/// A refresh token to trade.
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// A one-time code.
#[derive(Deserialize, ToSchema)]
pub struct TotpCode {
    /// The current 6-digit code from the authenticator app.
    pub code: String,
}

/// API key list filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyListQuery {
    /// Every user's keys (needs `admin:users`).
    #[serde(default)]
    pub all: bool,
}

/// Creates an account with the `user` role.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn register(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    s.limit("register", &ip, s.http.register_per_minute).await?;
    Ok((StatusCode::CREATED, Json(s.platform.register(req).await?)))
}

/// Checks credentials and returns an access token and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 423, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    s.limit("login", &ip, s.http.login_per_minute).await?;
    let pair = s
        .platform
        .login(&req.email, &req.password, req.totp_code.as_deref(), Some(&ip))
        .await?;
    Ok(Json(pair))
}

/// Trades a refresh token for a new pair; each refresh token works once.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn refresh(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    s.limit("refresh", &ip, s.http.refresh_per_minute).await?;
    Ok(Json(s.platform.refresh(&req.refresh_token, Some(&ip)).await?))
}

/// Ends the session of the access token used.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn logout(State(s): State<AppState>, Caller(p): Caller) -> Result<StatusCode, ApiError> {
    s.platform.logout(&p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The authenticated user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub async fn me(State(s): State<AppState>, Caller(p): Caller) -> Result<Json<User>, ApiError> {
    let id = p.user_id.clone();
    Ok(Json(s.platform.get_user(&with_self_read(p), &id).await?))
}

/// Reading one's own profile needs no permission beyond being logged in.
fn with_self_read(mut p: biomatch_platform::Principal) -> biomatch_platform::Principal {
    p.permissions.insert(biomatch_platform::Permission::UserRead);
    p
}

/// Starts TOTP set-up: returns a secret to confirm with `/auth/totp/enable`.
#[utoipa::path(post, path = "/api/v1/auth/totp/setup", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpSetup), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn totp_setup(State(s): State<AppState>, Caller(p): Caller) -> Result<Json<TotpSetup>, ApiError> {
    Ok(Json(s.platform.totp_setup(&p).await?))
}

/// Turns TOTP on; later logins need `totp_code`.
#[utoipa::path(post, path = "/api/v1/auth/totp/enable", tag = "auth", security(("bearer" = [])), request_body = TotpCode,
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn totp_enable(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<TotpCode>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.platform.totp_set(&p, &req.code, true).await?))
}

/// Turns TOTP off (needs a current code).
#[utoipa::path(post, path = "/api/v1/auth/totp/disable", tag = "auth", security(("bearer" = [])), request_body = TotpCode,
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn totp_disable(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<TotpCode>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.platform.totp_set(&p, &req.code, false).await?))
}

/// Creates an API key with scopes the caller holds; the key is shown once.
#[utoipa::path(post, path = "/api/v1/auth/api-keys", tag = "auth", security(("bearer" = [])), request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn create_api_key(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.platform.create_api_key(&p, req).await?)))
}

/// The caller's API keys (every user's with `all=true` and `admin:users`).
#[utoipa::path(get, path = "/api/v1/auth/api-keys", tag = "auth", security(("bearer" = []), ("api_key" = [])),
    params(KeyListQuery),
    responses((status = 200, body = Vec<ApiKeyInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_api_keys(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<KeyListQuery>,
) -> Result<Json<Vec<ApiKeyInfo>>, ApiError> {
    Ok(Json(s.platform.list_api_keys(&p, q.all).await?))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/api/v1/auth/api-keys/{id}", tag = "auth", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "API key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.platform.revoke_api_key(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
