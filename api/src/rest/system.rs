//! `/api/v1/audit`, `/api/v1/health` and `/api/v1/system`.

use axum::Json;
use axum::extract::State;
use biomatch_platform::Permission;
use biomatch_platform::audit::{AuditEntry, AuditQuery};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, Caller};

/// Audit entries, newest first (`admin:audit`).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = []), ("api_key" = [])),
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    Ok(Json(s.platform.query_audit(&p, &q).await?))
}

/// Liveness of the REST layer and its stores.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// `memory` or `redis`.
    pub cache: String,
}

/// Health check; needs no credentials.
#[utoipa::path(get, path = "/api/v1/health", tag = "system",
    responses((status = 200, body = Health), (status = 500, body = ErrorBody)))]
pub async fn health(State(s): State<AppState>) -> Result<Json<Health>, ApiError> {
    sqlx_ping(&s).await?;
    Ok(Json(Health {
        status: "ok".into(),
        database: format!("{:?}", s.platform.db.backend).to_lowercase(),
        cache: s.platform.cache.kind().into(),
    }))
}

async fn sqlx_ping(s: &AppState) -> Result<(), ApiError> {
    s.platform.ping().await.map_err(ApiError::from)
}

/// What the server runs.
#[derive(Serialize, ToSchema)]
pub struct SystemInfo {
    /// biomatch version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// `memory` or `redis`.
    pub cache: String,
    /// Galleries served.
    pub galleries: usize,
    /// Templates stored, over all galleries.
    pub records: u64,
    /// Whether matching RPCs are served without credentials.
    pub grpc_anonymous: bool,
}

/// Server facts for operators (`admin:system`).
#[utoipa::path(get, path = "/api/v1/system", tag = "system", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = SystemInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn system(State(s): State<AppState>, Caller(p): Caller) -> Result<Json<SystemInfo>, ApiError> {
    p.require(Permission::AdminSystem)?;
    let stats = s.matching.stats();
    Ok(Json(SystemInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        database: format!("{:?}", s.platform.db.backend).to_lowercase(),
        cache: s.platform.cache.kind().into(),
        galleries: stats.len(),
        records: stats.iter().map(|g| g.stats.records).sum(),
        grpc_anonymous: s.grpc_anonymous,
    }))
}
