//! `/api/v1/content`: drafts, publishing and full-text search.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use biomatch_platform::content::{Content, ContentQuery, ContentUpdate, NewContent};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Caller};

/// Creates a draft owned by the caller (`content:write`).
#[utoipa::path(post, path = "/api/v1/content", tag = "content", security(("bearer" = []), ("api_key" = [])),
    request_body = NewContent,
    responses((status = 201, body = Content), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<NewContent>,
) -> Result<(StatusCode, Json<Content>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.platform.create_content(&p, req).await?)))
}

/// The caller's items and published ones (all, for admins), newest first.
#[utoipa::path(get, path = "/api/v1/content", tag = "content", security(("bearer" = []), ("api_key" = [])),
    params(ContentQuery),
    responses((status = 200, body = Vec<Content>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> Result<Json<Vec<Content>>, ApiError> {
    Ok(Json(s.platform.list_content(&p, &q).await?))
}

/// Full-text search over titles and bodies (`q`), best match first.
#[utoipa::path(get, path = "/api/v1/content/search", tag = "content", security(("bearer" = []), ("api_key" = [])),
    params(ContentQuery),
    responses((status = 200, body = Vec<Content>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn search(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> Result<Json<Vec<Content>>, ApiError> {
    Ok(Json(s.platform.search_content(&p, &q).await?))
}

/// One item, if published, the caller's, or the caller is an admin.
#[utoipa::path(get, path = "/api/v1/content/{id}", tag = "content", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = Content), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<Content>, ApiError> {
    Ok(Json(s.platform.get_content(&p, &id).await?))
}

/// Edits one's own item (any, for admins).
#[utoipa::path(patch, path = "/api/v1/content/{id}", tag = "content", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "content id")), request_body = ContentUpdate,
    responses((status = 200, body = Content), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ContentUpdate>,
) -> Result<Json<Content>, ApiError> {
    Ok(Json(s.platform.update_content(&p, &id, req).await?))
}

/// Deletes one's own item (any, for admins).
#[utoipa::path(delete, path = "/api/v1/content/{id}", tag = "content", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "content id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.platform.delete_content(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publishes an item (`content:publish`).
#[utoipa::path(post, path = "/api/v1/content/{id}/publish", tag = "content", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = Content), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn publish(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<Content>, ApiError> {
    Ok(Json(s.platform.set_published(&p, &id, true).await?))
}

/// Withdraws an item to draft (`content:publish`).
#[utoipa::path(post, path = "/api/v1/content/{id}/unpublish", tag = "content", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = Content), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unpublish(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<Content>, ApiError> {
    Ok(Json(s.platform.set_published(&p, &id, false).await?))
}
