//! The platform around matching: who may call the service and what they did.
//!
//! - [`auth`]: registration, login with lockout and optional TOTP, JWT access
//!   tokens bound to a session, rotating refresh tokens with reuse detection.
//! - [`api_keys`]: hashed, scoped, revocable keys for service clients.
//! - [`rbac`]: roles and permissions; [`Principal`] is an authenticated caller.
//! - [`users`], [`content`], [`audit`]: the resources, with their access rules.
//! - [`db`], [`cache`], [`ratelimit`]: SQLite or PostgreSQL, in-process or
//!   Redis.
//!
//! Every operation takes the calling [`Principal`] and enforces its rules
//! here, so the REST handlers and the gRPC guard stay thin adapters.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod content;
pub mod db;
pub mod error;
pub mod password;
pub mod principal;
pub mod ratelimit;
pub mod rbac;
pub mod testing;
pub mod tokens;
pub mod totp;
pub mod users;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{PlatformError, Result};
pub use principal::{AuthMethod, Principal};
pub use rbac::{Permission, Role};

use crate::cache::Cache;
use crate::db::Db;
use crate::ratelimit::RateLimiter;
use crate::tokens::JwtKeys;

tokio::task_local! {
    /// The trace id of the request being handled, set by the REST and gRPC
    /// adapters; audit entries and error bodies carry it.
    pub static TRACE_ID: String;
}

/// The current request's trace id, if any.
pub fn trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Settings of the platform layer.
#[derive(Clone, Debug, PartialEq)]
pub struct PlatformConfig {
    /// Where SQLite's `platform.db` (and a generated JWT secret) live.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; `None` for embedded SQLite.
    pub database_url: Option<String>,
    /// `redis://…` for a shared cache and rate limits; `None` for in-process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// HS256 secret for access tokens; `None` generates one into the data
    /// directory (fine for one instance; set it when several share a database).
    pub jwt_secret: Option<String>,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Consecutive failed logins that lock an account.
    pub lockout_threshold: u32,
    /// How long such a lockout lasts.
    pub lockout: Duration,
    /// How long a checked API key is trusted from the cache.
    pub api_key_cache: Duration,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            data_dir: PathBuf::from("./biomatch-data"),
            database_url: None,
            redis_url: None,
            redis_prefix: "biomatch:".into(),
            jwt_secret: None,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            lockout_threshold: 5,
            lockout: Duration::from_secs(15 * 60),
            api_key_cache: Duration::from_secs(10),
        }
    }
}

/// The platform: database, cache, limiter and token keys, shared by every
/// adapter.
#[derive(Clone, Debug)]
pub struct Platform {
    /// The relational store.
    pub db: Db,
    /// The cache (Redis or in-process).
    pub cache: Cache,
    /// Request limits.
    pub limiter: RateLimiter,
    keys: JwtKeys,
    cfg: PlatformConfig,
    audit_tx: tokio::sync::mpsc::Sender<audit::AuditEvent>,
}

impl Platform {
    /// Connects the stores and loads (or creates) the token secret.
    pub async fn open(cfg: PlatformConfig) -> Result<Platform> {
        let db = Db::connect(cfg.database_url.as_deref(), &cfg.data_dir).await?;
        let cache = Cache::connect(cfg.redis_url.as_deref(), &cfg.redis_prefix).await?;
        let secret = match &cfg.jwt_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => load_or_create_secret(&cfg.data_dir.join("jwt.secret"))?,
        };
        Ok(Platform {
            audit_tx: audit::spawn_writer(db.clone()),
            db,
            limiter: RateLimiter::new(cache.clone()),
            cache,
            keys: JwtKeys::new(&secret)?,
            cfg,
        })
    }

    /// The settings it runs with.
    pub fn config(&self) -> &PlatformConfig {
        &self.cfg
    }
}

/// Reads the generated secret, or writes a new random one readable only by
/// this user, so that tokens survive restarts.
fn load_or_create_secret(path: &Path) -> Result<Vec<u8>> {
    if let Ok(s) = std::fs::read_to_string(path)
        && s.trim().len() >= 32
    {
        return Ok(s.trim().as_bytes().to_vec());
    }
    let secret = tokens::random_secret();
    let err = |e: std::io::Error| PlatformError::Internal(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(err)?;
        f.write_all(secret.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(secret.into_bytes())
}

impl Platform {
    /// A round trip to the database (health checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.db.pool).await?;
        Ok(())
    }
}
