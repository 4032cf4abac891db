//! `/api/v1/users`: account management.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use biomatch_platform::users::{NewUser, User, UserUpdate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Caller};

/// Paging.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
}

/// One page of users.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    /// The users.
    pub users: Vec<User>,
    /// Users in all.
    pub total: i64,
}

/// Creates a user with any role (`admin:users`).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = []), ("api_key" = [])),
    request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    s.limit("user_create", &p.user_id, s.http.user_create_per_minute)
        .await?;
    Ok((StatusCode::CREATED, Json(s.platform.create_user(&p, req).await?)))
}

/// Lists users (`admin:users`).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(Page),
    responses((status = 200, body = UserPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<UserPage>, ApiError> {
    let (users, total) = s
        .platform
        .list_users(&p, q.limit.unwrap_or(100), q.offset.unwrap_or(0))
        .await?;
    Ok(Json(UserPage { users, total }))
}

/// One user (oneself, or anyone with `admin:users`).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.platform.get_user(&p, &id).await?))
}

/// Changes a user: oneself (name, password with `current_password`), or
/// anyone including the role with `admin:users`.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "user id")), request_body = UserUpdate,
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.platform.update_user(&p, &id, req).await?))
}

/// Deletes a user with their sessions, keys and content (`user:delete`).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.platform.delete_user(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a user's email verified (`admin:users`).
#[utoipa::path(post, path = "/api/v1/users/{id}/verify-email", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn verify_email(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.platform.verify_email(&p, &id).await?))
}

/// Locks an account and ends its sessions (`admin:users`).
#[utoipa::path(post, path = "/api/v1/users/{id}/lock", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn lock_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.platform.set_locked(&p, &id, true).await?))
}

/// Unlocks an account, also ending a failed-login lockout (`admin:users`).
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlock_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.platform.set_locked(&p, &id, false).await?))
}
