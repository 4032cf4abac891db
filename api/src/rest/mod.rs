//! The REST layer (axum): auth, users, content, audit and system routes over
//! the shared [`Platform`]. Handlers are thin: the platform enforces every
//! rule. The OpenAPI document is generated from the same route table
//! (utoipa-axum), so a route cannot exist without its documentation.

mod auth;
mod content;
pub mod error;
pub mod extract;
mod system;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use biomatch_platform::Platform;
use biomatch_platform::ratelimit::Limit;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::HttpConfig;
use crate::service::MatchService;
use error::{ApiError, TRACE_ID};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Users, auth, content, audit.
    pub platform: Platform,
    /// The matching service (for system facts).
    pub matching: Arc<MatchService>,
    /// Limits and CORS.
    pub http: Arc<HttpConfig>,
    /// Whether gRPC matching is anonymous.
    pub grpc_anonymous: bool,
}

impl AppState {
    /// Counts one request of `client` on `route` against `per_minute`.
    pub async fn limit(&self, route: &str, client: &str, per_minute: u64) -> Result<(), ApiError> {
        self.platform
            .limiter
            .check(route, client, Limit::per_minute(per_minute))
            .await
            .map_err(ApiError::from)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "biomatch platform API", description = "Users, authentication, RBAC, API keys, content and audit around the biomatch matching service. Errors use one body: {\"error\": {code, message, details, trace_id, timestamp}}."),
    modifiers(&SecuritySchemes),
    tags((name = "auth"), (name = "users"), (name = "content"), (name = "audit"), (name = "system"))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The routes and their OpenAPI document.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::totp_setup))
        .routes(routes!(auth::totp_enable))
        .routes(routes!(auth::totp_disable))
        .routes(routes!(auth::create_api_key, auth::list_api_keys))
        .routes(routes!(auth::revoke_api_key))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::update_user, users::delete_user))
        .routes(routes!(users::verify_email))
        .routes(routes!(users::lock_user))
        .routes(routes!(users::unlock_user))
        .routes(routes!(content::create, content::list))
        .routes(routes!(content::search))
        .routes(routes!(content::get, content::update, content::delete))
        .routes(routes!(content::publish))
        .routes(routes!(content::unpublish))
        .routes(routes!(system::audit))
        .routes(routes!(system::health))
        .routes(routes!(system::system))
}

/// The OpenAPI document as pretty JSON (served, and compared with the
/// committed `api/openapi.json` by a test).
pub fn openapi_json() -> String {
    let (_, doc) = routes().split_for_parts();
    doc.to_pretty_json().expect("the document serialises")
}

/// The complete application: routes, the OpenAPI document, and the
/// middleware (trace ids, the global rate limit, security headers, CORS).
pub fn app(state: AppState) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc_json = Arc::new(doc.to_pretty_json().expect("the document serialises"));
    let cors = cors(&state.http.cors_origins);
    let router = router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let d = doc_json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], d.as_str().to_owned()) }
            }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "RES_NOT_FOUND", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "VAL_METHOD_NOT_ALLOWED",
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), global_limit))
        .with_state(state);
    let headers = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
        ("cache-control", "no-store"),
    ];
    let mut router = router;
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    if let Some(c) = cors {
        router = router.layer(c);
    }
    router.layer(axum::middleware::from_fn(trace_id))
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([HeaderName::from_static("x-trace-id"), header::RETRY_AFTER]),
    )
}

/// Gives each request a trace id (the caller's `x-request-id` when sane),
/// visible to handlers and error bodies and returned as `x-trace-id`.
async fn trace_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), trace_id = %id);
    let mut resp = TRACE_ID
        .scope(id.clone(), tracing::Instrument::instrument(next.run(req), span))
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-trace-id", v);
    }
    resp
}

/// The per-client budget every route shares.
async fn global_limit(axum::extract::State(s): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    let ip = extract::client_ip(req.extensions());
    match s.limit("all", &ip, s.http.rate_limit_per_minute).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Serves the REST layer on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    /// The committed document must match the code. Regenerate with
    /// `BIOMATCH_UPDATE_OPENAPI=1 cargo test -p biomatch-api --lib openapi`.
    #[test]
    fn openapi_document_is_committed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let now = super::openapi_json();
        if std::env::var_os("BIOMATCH_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &now).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == now,
            "api/openapi.json is out of step with the routes; regenerate it with \
             BIOMATCH_UPDATE_OPENAPI=1 cargo test -p biomatch-api --lib openapi"
        );
        let doc: serde_json::Value = serde_json::from_str(&now).unwrap();
        assert_eq!(doc["paths"].as_object().unwrap().len(), 23, "every route is documented");
    }
}
