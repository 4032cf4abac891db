//! API keys for service clients (gRPC matching callers, scripts).
//!
//! A key is `bmk_<id>_<secret>`; only the SHA-256 of the whole key is
//! stored. Its scopes are fixed at creation and may not exceed the creator's
//! permissions; at each use they are narrowed again by the owner's current
//! role. Checked keys are cached briefly (Redis or in-process) because the
//! gRPC path authenticates every call; revoking a key removes its cache entry.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::audit::AuditEvent;
use crate::error::{PlatformError, Result};
use crate::rbac::{Permission, Role, parse_scopes};
use crate::tokens::{api_key_id, new_api_key, sha256_hex};
use crate::totp::constant_time_eq;
use crate::{AuthMethod, Platform, Principal, now_ms};

/// An API key as listed (never the key itself).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyInfo {
    /// Id (also the middle part of the key).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Label.
    pub name: String,
    /// Permissions the key carries.
    pub scopes: Vec<String>,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Expiry, Unix ms, if any.
    pub expires_at: Option<i64>,
    /// Revoked, Unix ms, if revoked.
    pub revoked_at: Option<i64>,
    /// Last successful use, Unix ms (updated at most once per cache period).
    pub last_used_at: Option<i64>,
}

/// A request for a new key.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct NewApiKey {
    /// Label, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Permission names, such as `biometric:identify`; each must be one the
    /// creator holds.
    #[schema(min_items = 1)]
    pub scopes: Vec<String>,
    /// Lifetime in days; none means until revoked.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A created key: the only time the secret is shown.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key to send as `X-API-Key` (REST) or `x-api-key` (gRPC).
    pub key: String,
    /// Its record.
    pub info: ApiKeyInfo,
}

/// What the cache remembers about a checked key.
#[derive(Serialize, Deserialize)]
struct CachedKey {
    key_hash: String,
    user_id: String,
    email: String,
    role: Role,
    locked: bool,
    scopes: Vec<String>,
    expires_at: Option<i64>,
    revoked: bool,
}

const KEY_COLUMNS: &str = "id, user_id, name, scopes, created_at, expires_at, revoked_at, last_used_at";

fn info_from_row(r: &sqlx::any::AnyRow) -> Result<ApiKeyInfo> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKeyInfo {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        scopes: scopes.split(' ').filter(|s| !s.is_empty()).map(String::from).collect(),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn invalid_key() -> PlatformError {
    PlatformError::unauthenticated("AUTH_API_KEY_INVALID", "API key is not valid")
}

impl Platform {
    /// Creates a key for the caller. Keys cannot mint keys: the caller must
    /// hold an access token.
    pub async fn create_api_key(&self, p: &Principal, req: NewApiKey) -> Result<CreatedApiKey> {
        if p.session_id().is_none() {
            return Err(PlatformError::Forbidden {
                message: "API keys are created with an access token, not with another key".into(),
            });
        }
        let name = crate::users::check_name(&req.name)
            .map_err(|_| PlatformError::invalid("name", "must be 1 to 100 printable characters"))?;
        if req.scopes.is_empty() {
            return Err(PlatformError::invalid("scopes", "give at least one permission"));
        }
        let scopes: BTreeSet<Permission> =
            parse_scopes(&req.scopes).map_err(|e| PlatformError::invalid("scopes", e))?;
        if let Some(extra) = scopes.iter().find(|s| !p.has(**s)) {
            return Err(PlatformError::Forbidden {
                message: format!("cannot grant {extra}: you do not hold it"),
            });
        }
        if req.expires_in_days == Some(0) || req.expires_in_days.is_some_and(|d| d > 3650) {
            return Err(PlatformError::invalid("expires_in_days", "must be 1 to 3650"));
        }
        let (id, key) = new_api_key();
        let now = now_ms();
        let scope_text = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, key_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&p.user_id)
        .bind(&name)
        .bind(sha256_hex(&key))
        .bind(&scope_text)
        .bind(now)
        .bind(req.expires_in_days.map(|d| now + i64::from(d) * 86_400_000))
        .execute(&self.db.pool)
        .await?;
        self.audit(
            AuditEvent::by(p, "apikey.create", "success")
                .target(&id)
                .detail(&scope_text),
        )
        .await;
        Ok(CreatedApiKey {
            key,
            info: self.api_key_info(&id).await?,
        })
    }

    async fn api_key_info(&self, id: &str) -> Result<ApiKeyInfo> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or(PlatformError::NotFound { what: "API key" })?;
        info_from_row(&row)
    }

    /// The caller's keys; administrators with `all` see everyone's.
    pub async fn list_api_keys(&self, p: &Principal, all: bool) -> Result<Vec<ApiKeyInfo>> {
        let rows = if all {
            p.require(Permission::AdminUsers)?;
            sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"))
                .fetch_all(&self.db.pool)
                .await?
        } else {
            sqlx::query(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at, id"
            ))
            .bind(&p.user_id)
            .fetch_all(&self.db.pool)
            .await?
        };
        rows.iter().map(info_from_row).collect()
    }

    /// Revokes a key of the caller's (or anyone's, for `admin:users`).
    pub async fn revoke_api_key(&self, p: &Principal, id: &str) -> Result<()> {
        let info = self.api_key_info(id).await?;
        if info.user_id != p.user_id && !p.has(Permission::AdminUsers) {
            return Err(PlatformError::NotFound { what: "API key" });
        }
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        self.cache.delete(&format!("ak:{id}")).await?;
        self.audit(AuditEvent::by(p, "apikey.revoke", "success").target(id))
            .await;
        Ok(())
    }

    /// Drops a user's keys and sessions from the cache after a change to
    /// the user (role, lock, password, deletion), so the next call re-reads
    /// them.
    pub(crate) async fn forget_user(&self, user_id: &str) -> Result<()> {
        for (sql, prefix) in [
            ("SELECT id FROM api_keys WHERE user_id = $1", "ak"),
            ("SELECT id FROM sessions WHERE user_id = $1", "ses"),
        ] {
            let ids = sqlx::query(sql).bind(user_id).fetch_all(&self.db.pool).await?;
            for r in ids {
                let id: String = r.try_get(0)?;
                self.cache.delete(&format!("{prefix}:{id}")).await?;
            }
        }
        Ok(())
    }

    /// The caller behind an API key.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal> {
        let id = api_key_id(key).ok_or_else(invalid_key)?;
        let cache_key = format!("ak:{id}");
        let cached = match self.cache.get(&cache_key).await? {
            Some(s) => serde_json::from_str::<CachedKey>(&s).ok(),
            None => None,
        };
        let k = match cached {
            Some(k) => k,
            None => {
                let k = self.load_key(id).await?;
                let text = serde_json::to_string(&k).map_err(|e| PlatformError::Internal(e.to_string()))?;
                self.cache.set(&cache_key, &text, self.config().api_key_cache).await?;
                k
            }
        };
        if !constant_time_eq(sha256_hex(key).as_bytes(), k.key_hash.as_bytes()) || k.revoked {
            return Err(invalid_key());
        }
        if k.expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(PlatformError::unauthenticated(
                "AUTH_API_KEY_EXPIRED",
                "API key has expired",
            ));
        }
        if k.locked {
            return Err(PlatformError::Locked {
                message: "the key's owner is locked by an administrator".into(),
                retry_after_secs: None,
            });
        }
        let scopes = parse_scopes(&k.scopes).map_err(PlatformError::Internal)?;
        Ok(Principal {
            permissions: scopes.intersection(&k.role.permissions()).copied().collect(),
            user_id: k.user_id,
            email: k.email,
            role: k.role,
            via: AuthMethod::ApiKey(id.to_string()),
        })
    }

    async fn load_key(&self, id: &str) -> Result<CachedKey> {
        let row = sqlx::query(
            "SELECT k.key_hash, k.user_id, k.scopes, k.expires_at, k.revoked_at, u.email, u.role, u.locked \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or_else(invalid_key)?;
        // Off the request path: under a busy audit writer SQLite can make
        // this wait for its turn, and nobody needs the answer.
        let (pool, key_id) = (self.db.pool.clone(), id.to_string());
        tokio::spawn(async move {
            let _ = sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(key_id)
                .execute(&pool)
                .await;
        });
        let scopes: String = row.try_get("scopes")?;
        let role: String = row.try_get("role")?;
        Ok(CachedKey {
            key_hash: row.try_get("key_hash")?,
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            role: role.parse().map_err(PlatformError::Internal)?,
            locked: row.try_get::<i64, _>("locked")? != 0,
            scopes: scopes.split(' ').filter(|s| !s.is_empty()).map(String::from).collect(),
            expires_at: row.try_get("expires_at")?,
            revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        })
    }
}

impl Platform {
    /// Creates a key for the user with `email` on an operator's behalf (the
    /// `biomatch admin api-key` command, run where the database is).
    pub async fn create_api_key_as_operator(&self, email: &str, req: NewApiKey) -> Result<CreatedApiKey> {
        let rec = self
            .user_record_by_email(email)
            .await?
            .ok_or(PlatformError::NotFound { what: "user" })?;
        let p = Principal {
            permissions: rec.user.role.permissions(),
            user_id: rec.user.id,
            email: rec.user.email,
            role: rec.user.role,
            via: AuthMethod::Session("operator-cli".into()),
        };
        self.create_api_key(&p, req).await
    }
}
