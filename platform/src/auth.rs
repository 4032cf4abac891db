//! Logins and tokens.
//!
//! A login opens a *session*. The access token (a JWT, 15 minutes by
//! default) names its session, and every request checks that the session is
//! still open, so logout and an administrator's lock take effect at once.
//! Refresh tokens rotate: each is good for one refresh, and presenting a used
//! one means it was stolen (or replayed), so the whole session is revoked.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tracing::warn;
use utoipa::ToSchema;

use crate::audit::AuditEvent;
use crate::error::{PlatformError, Result};
use crate::rbac::Role;
use crate::tokens::{Claims, ISSUER, random_secret, sha256_hex};
use crate::users::{NewUser, User, UserRecord};
use crate::{AuthMethod, Platform, Principal, now_ms, password, totp};

/// What the cache remembers about an open session of an unlocked user.
#[derive(Serialize, Deserialize)]
struct CachedSession {
    user_id: String,
    email: String,
    role: Role,
}

/// A fresh pair of tokens.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque token for `/auth/refresh`; single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// What a TOTP set-up returns.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TotpSetup {
    /// Base32 secret to type into an authenticator app.
    pub secret: String,
    /// `otpauth://` URI for a QR code.
    pub otpauth_uri: String,
}

/// A real argon2id hash, checked against when the email is unknown so that
/// a login's timing does not reveal which emails exist.
fn dummy_hash() -> String {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| password::hash("not the password of anyone").unwrap_or_default())
        .clone()
}

fn invalid_credentials() -> PlatformError {
    PlatformError::unauthenticated("AUTH_INVALID_CREDENTIALS", "email or password is wrong")
}

impl Platform {
    /// Self-registration: a new account with the `user` role.
    pub async fn register(&self, new: NewUser) -> Result<User> {
        if new.role.is_some_and(|r| r != Role::User) {
            return Err(PlatformError::invalid(
                "role",
                "self-registration always creates a user",
            ));
        }
        let u = self.insert_user(new, Role::User).await?;
        self.audit(AuditEvent::by_user(&u.id, "auth.register", "success").target(&u.id))
            .await;
        Ok(u)
    }

    /// Checks the password (and TOTP code when enabled) and opens a session.
    /// Failures count towards the lockout.
    pub async fn login(&self, email: &str, pw: &str, totp_code: Option<&str>, ip: Option<&str>) -> Result<TokenPair> {
        let Some(rec) = self.user_record_by_email(email).await? else {
            password::verify_async(pw.to_string(), dummy_hash()).await;
            self.audit(
                AuditEvent::anonymous("auth.login", "failure")
                    .detail("unknown email")
                    .ip(ip),
            )
            .await;
            return Err(invalid_credentials());
        };
        let id = rec.user.id.clone();
        let now = now_ms();
        if rec.user.locked {
            self.audit(AuditEvent::by_user(&id, "auth.login", "locked").ip(ip))
                .await;
            return Err(PlatformError::Locked {
                message: "this account is locked by an administrator".into(),
                retry_after_secs: None,
            });
        }
        if let Some(until) = rec.locked_until.filter(|&t| t > now) {
            self.audit(AuditEvent::by_user(&id, "auth.login", "locked").ip(ip))
                .await;
            return Err(PlatformError::Locked {
                message: "too many failed logins; try again later".into(),
                retry_after_secs: Some(((until - now) as u64).div_ceil(1000)),
            });
        }
        if !password::verify_async(pw.to_string(), rec.password_hash.clone()).await {
            self.login_failed(&rec, ip, "wrong password").await?;
            return Err(invalid_credentials());
        }
        if rec.user.totp_enabled {
            let secret = rec.totp_secret.as_deref().unwrap_or_default();
            match totp_code {
                None => {
                    return Err(PlatformError::unauthenticated(
                        "AUTH_TOTP_REQUIRED",
                        "this account needs a one-time code (totp_code)",
                    ));
                }
                Some(c) if !totp::check(secret, c, (now / 1000) as u64) => {
                    self.login_failed(&rec, ip, "wrong TOTP code").await?;
                    return Err(PlatformError::unauthenticated(
                        "AUTH_TOTP_INVALID",
                        "the one-time code is wrong",
                    ));
                }
                Some(_) => {}
            }
        }
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(&id)
            .execute(&self.db.pool)
            .await?;
        let session = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(&session)
            .bind(&id)
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        let pair = self.issue_tokens(&id, &session).await?;
        self.audit(AuditEvent::by_user(&id, "auth.login", "success").ip(ip))
            .await;
        Ok(pair)
    }

    async fn login_failed(&self, rec: &UserRecord, ip: Option<&str>, why: &str) -> Result<()> {
        let failures = rec.failed_logins + 1;
        let threshold = i64::from(self.config().lockout_threshold.max(1));
        if failures >= threshold {
            let until = now_ms() + self.config().lockout.as_millis() as i64;
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = $1 WHERE id = $2")
                .bind(until)
                .bind(&rec.user.id)
                .execute(&self.db.pool)
                .await?;
            warn!(user = %rec.user.id, failures, "account locked after failed logins");
            self.audit(
                AuditEvent::by_user(&rec.user.id, "auth.lockout", "locked")
                    .detail(&format!("{failures} consecutive failures"))
                    .ip(ip),
            )
            .await;
        } else {
            sqlx::query("UPDATE users SET failed_logins = $1 WHERE id = $2")
                .bind(failures)
                .bind(&rec.user.id)
                .execute(&self.db.pool)
                .await?;
        }
        self.audit(
            AuditEvent::by_user(&rec.user.id, "auth.login", "failure")
                .detail(why)
                .ip(ip),
        )
        .await;
        Ok(())
    }

    async fn issue_tokens(&self, user_id: &str, session: &str) -> Result<TokenPair> {
        let now = now_ms();
        let ttl = self.config().access_ttl.as_secs().max(1);
        let access = self.keys.sign(&Claims {
            sub: user_id.into(),
            sid: session.into(),
            iss: ISSUER.into(),
            iat: now / 1000,
            exp: now / 1000 + ttl as i64,
        })?;
        let refresh = random_secret();
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)")
            .bind(sha256_hex(&refresh))
            .bind(session)
            .bind(now + self.config().refresh_ttl.as_millis() as i64)
            .execute(&self.db.pool)
            .await?;
        Ok(TokenPair {
            access_token: access,
            refresh_token: refresh,
            token_type: "Bearer".into(),
            expires_in: ttl,
        })
    }

    /// Trades a refresh token for a new pair. A token that was already used
    /// revokes its whole session (reuse detection).
    pub async fn refresh(&self, refresh_token: &str, ip: Option<&str>) -> Result<TokenPair> {
        let hash = sha256_hex(refresh_token);
        let row = sqlx::query(
            "SELECT r.session_id, r.expires_at, r.used_at, s.revoked_at, s.user_id \
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or_else(|| PlatformError::unauthenticated("AUTH_TOKEN_INVALID", "refresh token is not valid"))?;
        let session: String = row.try_get("session_id")?;
        let user_id: String = row.try_get("user_id")?;
        let used_at: Option<i64> = row.try_get("used_at")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if revoked_at.is_some() {
            return Err(PlatformError::unauthenticated(
                "AUTH_TOKEN_REVOKED",
                "this session has ended; log in again",
            ));
        }
        let now = now_ms();
        // The conditional update makes two concurrent uses of one token
        // resolve to exactly one winner; the loser is treated as reuse.
        let won = used_at.is_none()
            && sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(&hash)
                .execute(&self.db.pool)
                .await?
                .rows_affected()
                == 1;
        if !won {
            self.revoke_session(&session).await?;
            warn!(user = %user_id, session = %session, "refresh token reused; session revoked");
            self.audit(
                AuditEvent::by_user(&user_id, "auth.refresh_reuse", "session_revoked")
                    .target(&session)
                    .ip(ip),
            )
            .await;
            return Err(PlatformError::unauthenticated(
                "AUTH_TOKEN_REUSED",
                "refresh token was already used; the session is revoked, log in again",
            ));
        }
        if expires_at <= now {
            return Err(PlatformError::unauthenticated(
                "AUTH_TOKEN_EXPIRED",
                "refresh token has expired; log in again",
            ));
        }
        let rec = self.user_record(&user_id).await?;
        if rec.user.locked {
            return Err(PlatformError::Locked {
                message: "this account is locked by an administrator".into(),
                retry_after_secs: None,
            });
        }
        self.issue_tokens(&user_id, &session).await
    }

    /// Ends the caller's session: its access and refresh tokens stop working.
    pub async fn logout(&self, p: &Principal) -> Result<()> {
        let Some(session) = p.session_id() else {
            return Err(PlatformError::invalid(
                "authorization",
                "logout needs an access token; revoke API keys instead",
            ));
        };
        self.revoke_session(session).await?;
        self.audit(AuditEvent::by(p, "auth.logout", "success")).await;
        Ok(())
    }

    async fn revoke_session(&self, session: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(session)
            .execute(&self.db.pool)
            .await?;
        self.cache.delete(&format!("ses:{session}")).await
    }

    /// Deletes refresh tokens past their expiry, then sessions that have no
    /// tokens left and are revoked or older than any token they issued could
    /// live. Used tokens of live sessions stay until they expire, so reuse is
    /// still detected. Returns (tokens, sessions) deleted.
    pub async fn prune_sessions(&self) -> Result<(u64, u64)> {
        let now = now_ms();
        let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        let lifetime = self.config().refresh_ttl.max(self.config().access_ttl).as_millis() as i64;
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE (revoked_at IS NOT NULL OR created_at < $1) \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = sessions.id)",
        )
        .bind(now - lifetime)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        Ok((tokens, sessions))
    }

    /// Ends every session of a user but `keep`.
    pub(crate) async fn revoke_user_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3")
            .bind(now_ms())
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(&self.db.pool)
            .await?;
        self.forget_user(user_id).await
    }

    /// The caller behind an access token: valid signature, unexpired, open
    /// session, unlocked user. The session check is cached like API keys
    /// (every gRPC call authenticates); revoking a session, locking a user
    /// or changing their role or password clears the entry.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let claims = self.keys.verify(token)?;
        let cache_key = format!("ses:{}", claims.sid);
        if let Some(p) = self.cache.get(&cache_key).await?
            && let Ok(s) = serde_json::from_str::<CachedSession>(&p)
            && s.user_id == claims.sub
        {
            return Ok(Principal {
                permissions: s.role.permissions(),
                user_id: s.user_id,
                email: s.email,
                role: s.role,
                via: AuthMethod::Session(claims.sid),
            });
        }
        let p = self.check_session(&claims).await?;
        let entry = CachedSession {
            user_id: p.user_id.clone(),
            email: p.email.clone(),
            role: p.role,
        };
        let text = serde_json::to_string(&entry).map_err(|e| PlatformError::Internal(e.to_string()))?;
        self.cache.set(&cache_key, &text, self.config().api_key_cache).await?;
        Ok(p)
    }

    async fn check_session(&self, claims: &Claims) -> Result<Principal> {
        let row = sqlx::query("SELECT revoked_at FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(&claims.sid)
            .bind(&claims.sub)
            .fetch_optional(&self.db.pool)
            .await?;
        let open = match row {
            Some(r) => r.try_get::<Option<i64>, _>(0)?.is_none(),
            None => false,
        };
        if !open {
            return Err(PlatformError::unauthenticated(
                "AUTH_TOKEN_REVOKED",
                "this session has ended; log in again",
            ));
        }
        let rec = match self.user_record(&claims.sub).await {
            Err(PlatformError::NotFound { .. }) => {
                return Err(PlatformError::unauthenticated(
                    "AUTH_TOKEN_INVALID",
                    "the user no longer exists",
                ));
            }
            r => r?,
        };
        if rec.user.locked {
            return Err(PlatformError::Locked {
                message: "this account is locked by an administrator".into(),
                retry_after_secs: None,
            });
        }
        Ok(Principal {
            permissions: rec.user.role.permissions(),
            user_id: rec.user.id,
            email: rec.user.email,
            role: rec.user.role,
            via: AuthMethod::Session(claims.sid.clone()),
        })
    }

    /// Starts TOTP enrolment: a new secret, not required at login until
    /// confirmed with [`Platform::totp_enable`].
    pub async fn totp_setup(&self, p: &Principal) -> Result<TotpSetup> {
        p.session_id()
            .ok_or_else(|| PlatformError::invalid("authorization", "TOTP is set up with an access token"))?;
        let rec = self.user_record(&p.user_id).await?;
        if rec.user.totp_enabled {
            return Err(PlatformError::Conflict {
                message: "TOTP is already enabled; disable it first".into(),
            });
        }
        let secret = totp::new_secret();
        sqlx::query("UPDATE users SET totp_secret = $1, updated_at = $2 WHERE id = $3")
            .bind(&secret)
            .bind(now_ms())
            .bind(&p.user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(TotpSetup {
            otpauth_uri: totp::provisioning_uri(&secret, &rec.user.email, "biomatch"),
            secret,
        })
    }

    /// Confirms set-up with a current code (`enable = true`) or turns TOTP off
    /// with one (`enable = false`).
    pub async fn totp_set(&self, p: &Principal, code: &str, enable: bool) -> Result<User> {
        let rec = self.user_record(&p.user_id).await?;
        let Some(secret) = rec.totp_secret.as_deref() else {
            return Err(PlatformError::Conflict {
                message: "no TOTP secret; call /auth/totp/setup first".into(),
            });
        };
        if rec.user.totp_enabled == enable {
            return Err(PlatformError::Conflict {
                message: format!("TOTP is already {}", if enable { "enabled" } else { "disabled" }),
            });
        }
        if !totp::check(secret, code, (now_ms() / 1000) as u64) {
            return Err(PlatformError::invalid("code", "the one-time code is wrong"));
        }
        let sql = if enable {
            "UPDATE users SET totp_enabled = 1, updated_at = $1 WHERE id = $2"
        } else {
            "UPDATE users SET totp_enabled = 0, totp_secret = NULL, updated_at = $1 WHERE id = $2"
        };
        sqlx::query(sql)
            .bind(now_ms())
            .bind(&p.user_id)
            .execute(&self.db.pool)
            .await?;
        let action = if enable {
            "auth.totp_enable"
        } else {
            "auth.totp_disable"
        };
        self.audit(AuditEvent::by(p, action, "success")).await;
        Ok(self.user_record(&p.user_id).await?.user)
    }
}
