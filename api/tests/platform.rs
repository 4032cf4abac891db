//! The platform surface end to end: the real `biomatch` binary on loopback,
//! a real HTTP client, and a real gRPC client. Every scenario runs twice:
//! on the embedded defaults (SQLite, in-process cache) and on PostgreSQL +
//! Redis (`BIOMATCH_TEST_POSTGRES`, `BIOMATCH_TEST_REDIS`; default the
//! local servers). A missing PostgreSQL or Redis fails the test: CI starts
//! them (`.ci/run`).

mod common;

use std::path::Path;
use std::time::Duration;

use biomatch_platform::testing::{TestDatabase, redis_url};
use biomatch_proto::v1 as pb;
use common::Server;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh database (and Redis key prefix) per test, dropped at the end.
struct Store {
    env: Vec<(String, String)>,
    pg: Option<TestDatabase>,
}

impl Store {
    async fn new(kind: Kind) -> Store {
        match kind {
            Kind::Sqlite => Store { env: vec![], pg: None },
            Kind::Postgres => {
                let db = TestDatabase::create().await;
                Store {
                    env: vec![
                        ("DATABASE_URL".into(), db.url.clone()),
                        ("REDIS_URL".into(), redis_url()),
                        ("BIOMATCH_REDIS_PREFIX".into(), db.redis_prefix.clone()),
                    ],
                    pg: Some(db),
                }
            }
        }
    }

    async fn drop_db(&self) {
        if let Some(db) = &self.pg {
            db.drop_db().await;
        }
    }
}

/// A REST client.
struct Http {
    base: String,
    c: reqwest::Client,
}

/// Status, headers and JSON body (Null when empty).
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Http {
    async fn call(&self, method: Method, path: &str, auth: Option<&str>, body: Option<Value>) -> Reply {
        let mut rb = self.c.request(method, format!("{}{path}", self.base));
        match auth {
            Some(k) if k.starts_with("bmk_") => rb = rb.header("x-api-key", k),
            Some(t) => rb = rb.bearer_auth(t),
            None => {}
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        if status >= 400 {
            let e = &body["error"];
            assert!(
                e["code"].is_string()
                    && e["message"].is_string()
                    && e["trace_id"].is_string()
                    && e["timestamp"].is_string()
                    && e["details"].is_object(),
                "error body shape: {body}"
            );
        }
        Reply { status, headers, body }
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> Reply {
        self.call(Method::GET, path, auth, None).await
    }

    async fn post(&self, path: &str, auth: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Logs in and returns the access token, failing the test otherwise.
    async fn token(&self, email: &str, password: &str) -> String {
        let r = self.login(email, password).await;
        assert_eq!(r.status, 200, "login {email}: {}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }
}

const ADMIN: &str = "admin@example.org";
const PW: &str = "correct horse battery";

/// A server on `kind` with a bootstrapped administrator.
struct Env {
    server: Server,
    http: Http,
    store: Store,
    admin: String,
    _dir: tempfile::TempDir,
}

fn run_cli(args: &[&str], data_dir: &Path, store: &Store) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_biomatch"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env("BIOMATCH_LOG", "warn");
    for (k, v) in &store.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn setup(kind: Kind, extra: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let store = Store::new(kind).await;
    let bootstrap = ["admin", "bootstrap", "--email", ADMIN, "--password", PW];
    assert_eq!(run_cli(&bootstrap, &data, &store)["user"]["role"], "admin");
    let mut env: Vec<(&str, &str)> = vec![
        ("BIOMATCH_LOGIN_PER_MINUTE", "1000"),
        ("BIOMATCH_REGISTER_PER_MINUTE", "1000"),
        ("BIOMATCH_USER_CREATE_PER_MINUTE", "1000"),
    ];
    env.extend(store.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.extend_from_slice(extra);
    let server = Server::start(&data, &env);
    let http = Http {
        base: server.http.clone(),
        c: reqwest::Client::new(),
    };
    let admin = http.token(ADMIN, PW).await;
    let health = http.get("/api/v1/health", None).await;
    let want = if kind == Kind::Sqlite {
        ["sqlite", "memory"]
    } else {
        ["postgres", "redis"]
    };
    assert_eq!(
        [
            health.body["database"].as_str().unwrap(),
            health.body["cache"].as_str().unwrap()
        ],
        want
    );
    Env {
        server,
        http,
        store,
        admin,
        _dir: dir,
    }
}

impl Env {
    /// Creates a user with `role` (as the admin) and logs them in.
    async fn user(&self, email: &str, role: &str) -> (String, String) {
        let r = self
            .http
            .post(
                "/api/v1/users",
                Some(&self.admin),
                json!({"email": email, "password": PW, "name": email, "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().to_string(),
            self.http.token(email, PW).await,
        )
    }

    async fn finish(self) {
        self.server.stop();
        self.store.drop_db().await;
    }
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Kind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_redis() {
                super::$name(super::Kind::Postgres).await
            }
        }
    )*};
}

on_both_stores!(
    rbac_matrix,
    tokens_expire_rotate_and_detect_reuse,
    lockout_and_totp,
    rate_limits_answer_429,
    validation_errors_use_the_error_body,
    grpc_needs_credentials,
    content_search_and_visibility,
    users_manage_themselves_admins_manage_all,
);

async fn rbac_matrix(kind: Kind) {
    let e = setup(kind, &[]).await;
    let h = &e.http;
    let (uid, user) = e.user("user@example.org", "user").await;
    let (gid, guest) = e.user("guest@example.org", "guest").await;
    let (vid, _victim) = e.user("victim@example.org", "user").await;
    let draft = h
        .post(
            "/api/v1/content",
            Some(&user),
            json!({"title": "User draft", "body": "text"}),
        )
        .await;
    assert_eq!(draft.status, 201);
    let draft = draft.body["id"].as_str().unwrap().to_string();
    let published = h
        .post(
            "/api/v1/content",
            Some(&e.admin),
            json!({"title": "Notice", "body": "public"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        h.post(
            &format!("/api/v1/content/{published}/publish"),
            Some(&e.admin),
            json!({})
        )
        .await
        .status,
        200
    );

    // (method, path, body, [admin, user, guest])
    let matrix: Vec<(Method, String, Option<Value>, [u16; 3])> = vec![
        (Method::GET, "/api/v1/users".into(), None, [200, 403, 403]),
        (Method::GET, format!("/api/v1/users/{uid}"), None, [200, 200, 404]),
        (Method::GET, format!("/api/v1/users/{gid}"), None, [200, 404, 403]),
        (Method::GET, "/api/v1/auth/me".into(), None, [200, 200, 200]),
        (
            Method::POST,
            "/api/v1/content".into(),
            Some(json!({"title": "t", "body": "b"})),
            [201, 201, 403],
        ),
        (Method::GET, format!("/api/v1/content/{draft}"), None, [200, 200, 404]),
        (
            Method::GET,
            format!("/api/v1/content/{published}"),
            None,
            [200, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/content/{draft}/publish"),
            Some(json!({})),
            [200, 403, 403],
        ),
        (
            Method::PATCH,
            format!("/api/v1/content/{published}"),
            Some(json!({"title": "x"})),
            [200, 403, 403],
        ),
        (Method::GET, "/api/v1/audit".into(), None, [200, 403, 403]),
        (Method::GET, "/api/v1/system".into(), None, [200, 403, 403]),
        (
            Method::POST,
            format!("/api/v1/users/{vid}/lock"),
            Some(json!({})),
            [200, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/users/{vid}/unlock"),
            Some(json!({})),
            [200, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/users/{vid}/verify-email"),
            Some(json!({})),
            [200, 403, 403],
        ),
        // Only administrators change roles; to others, another user is invisible.
        (
            Method::PATCH,
            format!("/api/v1/users/{uid}"),
            Some(json!({"role": "user"})),
            [200, 403, 404],
        ),
    ];
    for (method, path, body, want) in matrix {
        for (who, token, expect) in [
            ("admin", &e.admin, want[0]),
            ("user", &user, want[1]),
            ("guest", &guest, want[2]),
        ] {
            let r = h.call(method.clone(), &path, Some(token), body.clone()).await;
            assert_eq!(r.status, expect, "{who} {method} {path}: {}", r.body);
            if r.status == 403 {
                assert_eq!(r.code(), "AUTHZ_FORBIDDEN");
            }
        }
    }
    // Deleting: users cannot, admins can (and not themselves).
    assert_eq!(
        h.call(Method::DELETE, &format!("/api/v1/users/{vid}"), Some(&guest), None)
            .await
            .status,
        403
    );
    assert_eq!(
        h.call(Method::DELETE, &format!("/api/v1/users/{vid}"), Some(&e.admin), None)
            .await
            .status,
        204
    );
    assert_eq!(h.get(&format!("/api/v1/users/{vid}"), Some(&e.admin)).await.status, 404);
    let me = h.get("/api/v1/auth/me", Some(&e.admin)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let selfdel = h
        .call(Method::DELETE, &format!("/api/v1/users/{me}"), Some(&e.admin), None)
        .await;
    assert_eq!((selfdel.status, selfdel.code()), (409, "RES_CONFLICT"));
    // CORS is off by default: no grant for any origin.
    let pre =
        h.c.request(Method::OPTIONS, format!("{}/api/v1/users", h.base))
            .header("origin", "https://console.example")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    // 401 without credentials, whatever the route.
    for path in ["/api/v1/users", "/api/v1/content", "/api/v1/audit", "/api/v1/auth/me"] {
        let r = h.get(path, None).await;
        assert_eq!((r.status, r.code()), (401, "AUTH_TOKEN_MISSING"), "{path}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    e.finish().await;
}

async fn tokens_expire_rotate_and_detect_reuse(kind: Kind) {
    let e = setup(kind, &[("BIOMATCH_ACCESS_TTL_SECS", "2")]).await;
    let h = &e.http;
    e.user("ann@example.org", "user").await;
    let first = h.login("ann@example.org", PW).await.body;
    let (access, refresh) = (
        first["access_token"].as_str().unwrap(),
        first["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(first["expires_in"], 2);
    assert_eq!(h.get("/api/v1/auth/me", Some(access)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = h.get("/api/v1/auth/me", Some(access)).await;
    assert_eq!((r.status, r.code()), (401, "AUTH_TOKEN_EXPIRED"));

    // Rotation: a refresh gives a new pair, and the new access token works.
    let second = h
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let (access2, refresh2) = (
        second.body["access_token"].as_str().unwrap().to_string(),
        second.body["refresh_token"].as_str().unwrap().to_string(),
    );
    assert_ne!(refresh2, refresh);
    assert_eq!(h.get("/api/v1/auth/me", Some(&access2)).await.status, 200);

    // Reuse of the first refresh token: detected, and the session dies.
    let reuse = h
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!((reuse.status, reuse.code()), (401, "AUTH_TOKEN_REUSED"));
    let r = h
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh2}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "AUTH_TOKEN_REVOKED"),
        "the rotated token dies with its session"
    );
    let r = h.get("/api/v1/auth/me", Some(&access2)).await;
    assert_eq!((r.status, r.code()), (401, "AUTH_TOKEN_REVOKED"));
    let r = h
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": "made-up"}))
        .await;
    assert_eq!((r.status, r.code()), (401, "AUTH_TOKEN_INVALID"));

    // Logout ends a session at once; another session is unaffected.
    let a = h.token("ann@example.org", PW).await;
    let b = h.login("ann@example.org", PW).await.body;
    assert_eq!(h.post("/api/v1/auth/logout", Some(&a), json!({})).await.status, 204);
    assert_eq!(h.get("/api/v1/auth/me", Some(&a)).await.status, 401);
    assert_eq!(
        h.get("/api/v1/auth/me", Some(b["access_token"].as_str().unwrap()))
            .await
            .status,
        200
    );
    let forged = format!("{}x", b["access_token"].as_str().unwrap());
    assert_eq!(
        h.get("/api/v1/auth/me", Some(&forged)).await.code(),
        "AUTH_TOKEN_INVALID"
    );

    // The reuse is in the audit log.
    let admin = h.token(ADMIN, PW).await; // setup's token has expired by now
    let log = h.get("/api/v1/audit?action=auth.refresh_reuse", Some(&admin)).await;
    assert_eq!(log.body.as_array().unwrap().len(), 1, "{}", log.body);
    e.finish().await;
}

async fn lockout_and_totp(kind: Kind) {
    let e = setup(
        kind,
        &[("BIOMATCH_LOCKOUT_THRESHOLD", "3"), ("BIOMATCH_LOCKOUT_SECS", "600")],
    )
    .await;
    let h = &e.http;
    let (bob, _) = e.user("bob@example.org", "user").await;
    for _ in 0..3 {
        let r = h.login("bob@example.org", "wrong password!").await;
        assert_eq!((r.status, r.code()), (401, "AUTH_INVALID_CREDENTIALS"));
    }
    let r = h.login("bob@example.org", PW).await;
    assert_eq!(
        (r.status, r.code()),
        (423, "AUTH_ACCOUNT_LOCKED"),
        "the right password does not help"
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    let unknown = h.login("nobody@example.org", PW).await;
    assert_eq!(
        unknown.code(),
        "AUTH_INVALID_CREDENTIALS",
        "unknown emails look like wrong passwords"
    );
    assert_eq!(
        h.post(&format!("/api/v1/users/{bob}/unlock"), Some(&e.admin), json!({}))
            .await
            .status,
        200
    );
    let token = h.token("bob@example.org", PW).await;

    // TOTP: set up, confirm with a code, then logins need one.
    let setup = h.post("/api/v1/auth/totp/setup", Some(&token), json!({})).await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    let secret = setup.body["secret"].as_str().unwrap().to_string();
    assert!(
        setup.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let now = || biomatch_platform::now_ms() as u64 / 1000;
    let bad = h
        .post("/api/v1/auth/totp/enable", Some(&token), json!({"code": "000000"}))
        .await;
    let code = biomatch_platform::totp::code_at(&secret, now()).unwrap();
    if code != "000000" {
        assert_eq!((bad.status, bad.code()), (400, "VAL_INVALID_FIELD"));
    }
    let on = h
        .post("/api/v1/auth/totp/enable", Some(&token), json!({"code": code}))
        .await;
    assert_eq!(
        (on.status, on.body["totp_enabled"].as_bool()),
        (200, Some(true)),
        "{}",
        on.body
    );
    let r = h.login("bob@example.org", PW).await;
    assert_eq!((r.status, r.code()), (401, "AUTH_TOTP_REQUIRED"));
    let code = biomatch_platform::totp::code_at(&secret, now()).unwrap();
    let r = h
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "bob@example.org", "password": PW, "totp_code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // An administrator's lock ends live sessions too.
    assert_eq!(
        h.post(&format!("/api/v1/users/{bob}/lock"), Some(&e.admin), json!({}))
            .await
            .status,
        200
    );
    let r = h.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let log = h.get("/api/v1/audit?action=auth.lockout", Some(&e.admin)).await;
    assert_eq!(log.body.as_array().unwrap().len(), 1);
    e.finish().await;
}

async fn rate_limits_answer_429(kind: Kind) {
    let e = setup(
        kind,
        &[
            ("BIOMATCH_LOGIN_PER_MINUTE", "10"),
            ("BIOMATCH_REGISTER_PER_MINUTE", "3"),
        ],
    )
    .await;
    let h = &e.http;
    // setup() used one login of this minute's ten.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(h.login(ADMIN, "wrong password!").await);
    }
    let limited: Vec<&Reply> = statuses.iter().filter(|r| r.status == 429).collect();
    // Nine more fit the window unless it rolled over during the loop.
    assert!((2..=12).contains(&limited.len()), "{}", limited.len());
    let r = limited[0];
    assert_eq!(r.code(), "RATE_LIMIT_EXCEEDED");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let mut codes = Vec::new();
    for i in 0..4 {
        let body = json!({"email": format!("r{i}@example.org"), "password": PW, "name": "R"});
        codes.push(h.post("/api/v1/auth/register", None, body).await.status);
    }
    assert!(codes.contains(&429) && codes.contains(&201), "{codes:?}");
    e.finish().await;
}

async fn validation_errors_use_the_error_body(kind: Kind) {
    let e = setup(kind, &[("BIOMATCH_CORS_ORIGINS", "https://console.example")]).await;
    let h = &e.http;
    // CORS: the configured origin is allowed, others get no grant.
    let preflight = |origin: &'static str| {
        h.c.request(Method::OPTIONS, format!("{}/api/v1/users", h.base))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://console.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://console.example");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let r = h
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": PW, "name": "A"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.body["error"]["details"]["field"].as_str()),
        (400, "VAL_INVALID_FIELD", Some("email"))
    );
    let r = h
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a@example.org", "password": "short", "name": "A"}),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "password");
    let r = h
        .post("/api/v1/auth/register", None, json!({"email": "a@example.org"}))
        .await;
    assert_eq!((r.status, r.code()), (400, "VAL_MALFORMED_BODY"));
    let raw =
        h.c.post(format!("{}/api/v1/auth/login", h.base))
            .body("{\"email\":")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
    assert_eq!(raw.status(), 400);
    let r =
        h.c.post(format!("{}/api/v1/auth/login", h.base))
            .body("email=a")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 415);
    let dup = h
        .post(
            "/api/v1/users",
            Some(&e.admin),
            json!({"email": ADMIN, "password": PW, "name": "Again"}),
        )
        .await;
    assert_eq!((dup.status, dup.code()), (409, "RES_CONFLICT"));
    let r = h.get("/api/v1/no-such-route", None).await;
    assert_eq!((r.status, r.code()), (404, "RES_NOT_FOUND"));
    let r = h.get("/api/v1/content?limit=lots", Some(&e.admin)).await;
    assert_eq!((r.status, r.code()), (400, "VAL_MALFORMED_QUERY"));
    let r = h.get("/api/v1/content/search?q=%22%29%2A", Some(&e.admin)).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "VAL_INVALID_FIELD"),
        "FTS operators alone are refused, not a 500"
    );
    // Security headers and trace ids on every answer.
    let r = h.get("/api/v1/health", None).await;
    for (k, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.headers[k], v);
    }
    let traced =
        h.c.get(format!("{}/api/v1/users", h.base))
            .header("x-request-id", "req-42")
            .send()
            .await
            .unwrap();
    assert_eq!(traced.headers()["x-trace-id"], "req-42");
    let body: Value = traced.json().await.unwrap();
    assert_eq!(body["error"]["trace_id"], "req-42");
    // The served document is the committed one.
    let doc = h.get("/api/v1/openapi.json", None).await.body;
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(doc, committed);
    e.finish().await;
}

async fn grpc_needs_credentials(kind: Kind) {
    let e = setup(
        kind,
        &[
            ("BIOMATCH_GRPC_ANONYMOUS", "false"),
            ("BIOMATCH_API_KEY_CACHE_SECS", "60"),
        ],
    )
    .await;
    let h = &e.http;
    let admin = e.admin.as_str();
    let key = |scopes: &[&str]| {
        let body = json!({"name": "svc", "scopes": scopes});
        async move { h.post("/api/v1/auth/api-keys", Some(admin), body).await }
    };
    let enroller = key(&["biometric:enroll", "biometric:identify"]).await;
    assert_eq!(enroller.status, 201, "{}", enroller.body);
    let enroller = enroller.body["key"].as_str().unwrap().to_string();
    let identifier = key(&["biometric:identify"]).await.body;
    let (identifier, identifier_id) = (
        identifier["key"].as_str().unwrap().to_string(),
        identifier["info"]["id"].as_str().unwrap().to_string(),
    );
    // A user cannot grant what they do not hold.
    let (_, user) = e.user("u@example.org", "user").await;
    let r = h
        .post(
            "/api/v1/auth/api-keys",
            Some(&user),
            json!({"name": "x", "scopes": ["biometric:enroll"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "AUTHZ_FORBIDDEN"));

    let ch = tonic::transport::Channel::from_shared(e.server.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = |secret: Option<&str>| {
        let creds = secret.map_or(biomatch_proto::Credentials::none(), |s| {
            biomatch_proto::Credentials::from_secret(s).unwrap()
        });
        pb::matcher_client::MatcherClient::with_interceptor(ch.clone(), creds)
    };
    let v: Vec<f32> = (0..128).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
    let identify = || pb::IdentifyRequest {
        probe: Some(common::face(&v)),
        top_k: 5,
        ..Default::default()
    };
    let denied = client(None).identify(identify()).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated, "{denied:?}");
    let denied = client(Some("bmk_0123456789abcdef0123456789abcdef_nope"))
        .identify(identify())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    client(Some(&enroller))
        .enroll(common::enroll_req("alice", "r1", common::face(&v)))
        .await
        .expect("enroll with an enrolling key");
    let no_enroll = client(Some(&identifier))
        .enroll(common::enroll_req("eve", "r2", common::face(&v)))
        .await
        .unwrap_err();
    assert_eq!(no_enroll.code(), tonic::Code::PermissionDenied);
    let found = client(Some(&identifier))
        .identify(identify())
        .await
        .expect("identify with an API key");
    assert_eq!(found.get_ref().candidates[0].subject_id, "alice");
    let token = h.token(ADMIN, PW).await;
    client(Some(&token))
        .identify(identify())
        .await
        .expect("an access token works too");
    // Health stays open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();

    // Revocation takes effect at once despite the key cache.
    let r = h
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/api-keys/{identifier_id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let after = client(Some(&identifier)).identify(identify()).await.unwrap_err();
    assert_eq!(after.code(), tonic::Code::Unauthenticated);

    // Every matching call is audited, refused ones included, without templates.
    let mut entries = Vec::new();
    for _ in 0..100 {
        entries = h
            .get("/api/v1/audit?action=biometric.", Some(&e.admin))
            .await
            .body
            .as_array()
            .unwrap()
            .clone();
        if entries.len() >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|x| {
            (
                x["action"].as_str().unwrap().to_string(),
                x["outcome"].as_str().unwrap().to_string(),
                x["actor_kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |a: &str, o: &str, k: &str| {
        summary
            .iter()
            .any(|s| s == &(a.to_string(), o.to_string(), k.to_string()))
    };
    assert!(has("biometric.identify", "denied", "anonymous"), "{summary:?}");
    assert!(has("biometric.enroll", "OK", "api_key"), "{summary:?}");
    assert!(
        has("biometric.enroll", "denied", "api_key"),
        "a refusal is the caller's: {summary:?}"
    );
    assert!(has("biometric.identify", "OK", "api_key"), "{summary:?}");
    assert!(has("biometric.identify", "OK", "user"), "{summary:?}");
    // Entries hold names, ids and codes only: short fields, no template bytes.
    let template_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
    };
    for x in &entries {
        let text = x.to_string();
        assert!(text.len() < 600 && !text.contains(&template_b64[..24]), "{text}");
    }
    e.finish().await;
}

async fn content_search_and_visibility(kind: Kind) {
    let e = setup(kind, &[]).await;
    let h = &e.http;
    let (_, ann) = e.user("ann@example.org", "user").await;
    let (_, ben) = e.user("ben@example.org", "user").await;
    let (_, guest) = e.user("g@example.org", "guest").await;
    async fn mk(h: &Http, t: &str, title: &str, body: &str) -> String {
        let r = h
            .post("/api/v1/content", Some(t), json!({"title": title, "body": body}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }
    let a1 = mk(h, &ann, "Passport renewal", "Bring the old passports to the office").await;
    let _b1 = mk(h, &ben, "Passport photos", "Photos must be recent").await;
    let a2 = mk(h, &ann, "Opening hours", "Closed on holidays").await;
    let titles = |r: &Reply| {
        let mut t: Vec<String> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["title"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    // Ann sees her own drafts only; stemming finds "passports" for "passport".
    let r = h.get("/api/v1/content/search?q=passport", Some(&ann)).await;
    assert_eq!(titles(&r), ["Passport renewal"], "{}", r.body);
    let r = h.get("/api/v1/content/search?q=passport", Some(&e.admin)).await;
    assert_eq!(titles(&r), ["Passport photos", "Passport renewal"]);
    assert_eq!(
        titles(&h.get("/api/v1/content/search?q=passport", Some(&guest)).await),
        Vec::<String>::new()
    );
    h.post(&format!("/api/v1/content/{a1}/publish"), Some(&e.admin), json!({}))
        .await;
    assert_eq!(
        titles(&h.get("/api/v1/content/search?q=passport", Some(&guest)).await),
        ["Passport renewal"]
    );
    assert_eq!(
        titles(&h.get("/api/v1/content?status=published", Some(&ben)).await),
        ["Passport renewal"]
    );
    assert_eq!(
        titles(&h.get("/api/v1/content", Some(&ann)).await),
        ["Opening hours", "Passport renewal"]
    );
    // Edits are searchable; deletes vanish from search.
    let r = h
        .call(
            Method::PATCH,
            &format!("/api/v1/content/{a2}"),
            Some(&ann),
            Some(json!({"body": "Biometric kiosks open at nine"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        titles(&h.get("/api/v1/content/search?q=kiosk", Some(&ann)).await),
        ["Opening hours"]
    );
    let r = h
        .call(
            Method::PATCH,
            &format!("/api/v1/content/{a2}"),
            Some(&ben),
            Some(json!({"title": "mine now"})),
        )
        .await;
    assert_eq!(r.status, 404, "another user's draft is invisible");
    assert_eq!(
        h.call(Method::DELETE, &format!("/api/v1/content/{a2}"), Some(&ann), None)
            .await
            .status,
        204
    );
    assert!(titles(&h.get("/api/v1/content/search?q=kiosk", Some(&ann)).await).is_empty());
    let r = h
        .post(&format!("/api/v1/content/{a1}/unpublish"), Some(&e.admin), json!({}))
        .await;
    assert_eq!(r.body["status"], "draft");
    assert_eq!(h.get(&format!("/api/v1/content/{a1}"), Some(&guest)).await.status, 404);
    e.finish().await;
}

async fn users_manage_themselves_admins_manage_all(kind: Kind) {
    let e = setup(kind, &[]).await;
    let h = &e.http;
    let (id, token) = e.user("cy@example.org", "user").await;
    let path = format!("/api/v1/users/{id}");
    let r = h
        .call(Method::PATCH, &path, Some(&token), Some(json!({"name": "Cy Young"})))
        .await;
    assert_eq!(r.body["name"], "Cy Young");
    let r = h
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"password": "a brand new secret"})),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "current_password", "{}", r.body);
    let r = h
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"password": "a brand new secret", "current_password": PW})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(h.login("cy@example.org", PW).await.status, 401);
    h.token("cy@example.org", "a brand new secret").await;
    let r = h
        .call(Method::PATCH, &path, Some(&token), Some(json!({"role": "admin"})))
        .await;
    assert_eq!(r.status, 403);
    let list = h.get("/api/v1/users?limit=2", Some(&e.admin)).await;
    assert_eq!(
        (
            list.body["users"].as_array().unwrap().len(),
            list.body["total"].as_i64()
        ),
        (2, Some(2))
    );
    let r = h.post(&format!("{path}/verify-email"), Some(&e.admin), json!({})).await;
    assert_eq!(r.body["email_verified"], true);
    // Registration always makes a plain user.
    let r = h
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "z@example.org", "password": PW, "name": "Z", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = h
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "Z@Example.org", "password": PW, "name": "Z"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["role"].as_str(), r.body["email"].as_str()),
        (201, Some("user"), Some("z@example.org"))
    );
    assert!(r.body.get("password_hash").is_none());
    // Tokens survive a restart (the signing secret is kept).
    let data = e.server.data_dir.clone();
    let Env {
        server,
        store,
        admin,
        _dir,
        ..
    } = e;
    server.stop();
    let mut env: Vec<(&str, &str)> = store.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("BIOMATCH_LOGIN_PER_MINUTE", "1000"));
    let server = Server::start(&data, &env);
    let h = Http {
        base: server.http.clone(),
        c: reqwest::Client::new(),
    };
    assert_eq!(h.get("/api/v1/auth/me", Some(&admin)).await.status, 200);
    assert_eq!(h.get(&path, Some(&admin)).await.body["name"], "Cy Young");
    server.stop();
    store.drop_db().await;
}
