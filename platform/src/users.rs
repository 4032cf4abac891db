//! User accounts and the rules for managing them: a user reads and edits
//! their own profile; administrators (`admin:users`) manage everyone.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use crate::error::{PlatformError, Result};
use crate::rbac::{Permission, Role};
use crate::{Platform, Principal, now_ms, password};

/// A user as the API shows it (never the password hash or TOTP secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct User {
    /// Id.
    pub id: String,
    /// Login email, lower-case.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether an administrator has verified the email.
    pub email_verified: bool,
    /// Locked by an administrator.
    pub locked: bool,
    /// Whether logins need a TOTP code.
    pub totp_enabled: bool,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Last changed, Unix ms.
    pub updated_at: i64,
}

/// A user with the columns only the server sees.
#[derive(Clone, Debug)]
pub(crate) struct UserRecord {
    pub user: User,
    pub password_hash: String,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub totp_secret: Option<String>,
}

pub(crate) const USER_COLUMNS: &str = "id, email, name, password_hash, role, email_verified, locked, failed_logins, \
     locked_until, totp_secret, totp_enabled, created_at, updated_at";

impl UserRecord {
    pub(crate) fn from_row(r: &AnyRow) -> Result<UserRecord> {
        let role: String = r.try_get("role")?;
        Ok(UserRecord {
            user: User {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                role: role.parse().map_err(PlatformError::Internal)?,
                email_verified: r.try_get::<i64, _>("email_verified")? != 0,
                locked: r.try_get::<i64, _>("locked")? != 0,
                totp_enabled: r.try_get::<i64, _>("totp_enabled")? != 0,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            },
            password_hash: r.try_get("password_hash")?,
            failed_logins: r.try_get("failed_logins")?,
            locked_until: r.try_get("locked_until")?,
            totp_secret: r.try_get("totp_secret")?,
        })
    }
}

/// Fields to create a user with.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// Login email.
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// Password, 10 to 128 characters.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    /// Display name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Role; `user` when omitted. Only administrators may set it.
    #[serde(default)]
    pub role: Option<Role>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct UserUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New password; a user changing their own must also give `current_password`.
    pub password: Option<String>,
    /// The present password (self-service password change).
    pub current_password: Option<String>,
    /// New role (administrators only).
    pub role: Option<Role>,
}

/// Lower-cases and checks an email address.
pub(crate) fn normalise_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(PlatformError::invalid("email", "must be an email address"))
    }
}

pub(crate) fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if (1..=100).contains(&n.chars().count()) && !n.chars().any(char::is_control) {
        Ok(n.to_string())
    } else {
        Err(PlatformError::invalid("name", "must be 1 to 100 printable characters"))
    }
}

/// Administrators may not lock, delete or demote themselves: the last one
/// would shut everyone out.
fn not_on_self(what: &str) -> PlatformError {
    PlatformError::Conflict {
        message: format!("you cannot {what}; ask another administrator"),
    }
}

/// `NotFound` when a statement keyed by user id touched no row.
fn user_found(rows: u64) -> Result<()> {
    if rows == 0 {
        Err(PlatformError::NotFound { what: "user" })
    } else {
        Ok(())
    }
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Platform {
    /// Inserts a user (no permission check: registration and the admin
    /// endpoint check before calling).
    pub(crate) async fn insert_user(&self, new: NewUser, role: Role) -> Result<User> {
        let email = normalise_email(&new.email)?;
        let name = check_name(&new.name)?;
        password::check_policy(&new.password)?;
        let hash = password::hash_async(new.password).await?;
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let res = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(&email)
        .bind(&name)
        .bind(&hash)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.db.pool)
        .await;
        match res {
            Ok(_) => self.user_record(&id).await.map(|r| r.user),
            Err(e) if unique_violation(&e) => Err(PlatformError::Conflict {
                message: format!("a user with email {email} already exists"),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn user_record(&self, id: &str) -> Result<UserRecord> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or(PlatformError::NotFound { what: "user" })?;
        UserRecord::from_row(&row)
    }

    pub(crate) async fn user_record_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(UserRecord::from_row).transpose()
    }

    /// `admin:users`: creates a user with any role.
    pub async fn create_user(&self, p: &Principal, new: NewUser) -> Result<User> {
        p.require(Permission::AdminUsers)?;
        let role = new.role.unwrap_or(Role::User);
        self.insert_user(new, role).await
    }

    /// `admin:users`: one page of users, oldest first, and the total count.
    pub async fn list_users(&self, p: &Principal, limit: u32, offset: u32) -> Result<(Vec<User>, i64)> {
        p.require(Permission::AdminUsers)?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(limit.clamp(1, 500)))
        .bind(i64::from(offset))
        .fetch_all(&self.db.pool)
        .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.db.pool)
            .await?
            .try_get(0)?;
        let users = rows
            .iter()
            .map(|r| UserRecord::from_row(r).map(|u| u.user))
            .collect::<Result<_>>()?;
        Ok((users, total))
    }

    /// Oneself with `user:read`, anyone with `admin:users`.
    pub async fn get_user(&self, p: &Principal, id: &str) -> Result<User> {
        self.require_self_or_admin(p, id, Permission::UserRead)?;
        Ok(self.user_record(id).await?.user)
    }

    /// Oneself with `user:write` (name, password with the current one),
    /// anyone with `admin:users` (also the role).
    pub async fn update_user(&self, p: &Principal, id: &str, upd: UserUpdate) -> Result<User> {
        self.require_self_or_admin(p, id, Permission::UserWrite)?;
        let admin = p.has(Permission::AdminUsers);
        if upd.role.is_some() && !admin {
            return Err(PlatformError::Forbidden {
                message: "changing a role needs the admin:users permission".into(),
            });
        }
        if upd.role.is_some_and(|r| r != p.role) && p.user_id == id {
            return Err(not_on_self("change your own role"));
        }
        let rec = self.user_record(id).await?;
        let name = upd.name.as_deref().map(check_name).transpose()?;
        let hash = match upd.password {
            Some(pw) => {
                password::check_policy(&pw)?;
                if p.user_id == id {
                    let cur = upd.current_password.clone().unwrap_or_default();
                    if !password::verify_async(cur, rec.password_hash.clone()).await {
                        return Err(PlatformError::invalid("current_password", "does not match"));
                    }
                }
                Some(password::hash_async(pw).await?)
            }
            None => None,
        };
        sqlx::query(
            "UPDATE users SET name = COALESCE($1, name), password_hash = COALESCE($2, password_hash), \
             role = COALESCE($3, role), updated_at = $4 WHERE id = $5",
        )
        .bind(name)
        .bind(hash.clone())
        .bind(upd.role.map(|r| r.as_str().to_string()))
        .bind(now_ms())
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        if hash.is_some() {
            // A new password ends every other login session.
            self.revoke_user_sessions(id, p.session_id()).await?;
        }
        if upd.role.is_some() {
            self.forget_user(id).await?;
        }
        Ok(self.user_record(id).await?.user)
    }

    /// `user:delete` (administrators): removes the user with their sessions,
    /// keys and content.
    pub async fn delete_user(&self, p: &Principal, id: &str) -> Result<()> {
        p.require(Permission::UserDelete)?;
        if p.user_id == id {
            return Err(not_on_self("delete your own account"));
        }
        self.forget_user(id).await?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        user_found(n)
    }

    /// `admin:users`: marks the email verified.
    pub async fn verify_email(&self, p: &Principal, id: &str) -> Result<User> {
        p.require(Permission::AdminUsers)?;
        self.set_user_flag(id, "email_verified = 1").await
    }

    /// `admin:users`: locks the account (ending its sessions) or unlocks it
    /// (also clearing a failure lockout).
    pub async fn set_locked(&self, p: &Principal, id: &str, locked: bool) -> Result<User> {
        p.require(Permission::AdminUsers)?;
        if locked && p.user_id == id {
            return Err(not_on_self("lock your own account"));
        }
        let u = if locked {
            let u = self.set_user_flag(id, "locked = 1").await?;
            self.revoke_user_sessions(id, None).await?;
            u
        } else {
            self.set_user_flag(id, "locked = 0, failed_logins = 0, locked_until = NULL")
                .await?
        };
        self.forget_user(id).await?;
        Ok(u)
    }

    async fn set_user_flag(&self, id: &str, set: &str) -> Result<User> {
        let n = sqlx::query(&format!("UPDATE users SET {set}, updated_at = $1 WHERE id = $2"))
            .bind(now_ms())
            .bind(id)
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        user_found(n)?;
        Ok(self.user_record(id).await?.user)
    }

    fn require_self_or_admin(&self, p: &Principal, id: &str, own: Permission) -> Result<()> {
        if p.has(Permission::AdminUsers) || (p.user_id == id && p.has(own)) {
            Ok(())
        } else if p.user_id == id {
            p.require(own)
        } else {
            // Do not confirm that another user's id exists.
            Err(PlatformError::NotFound { what: "user" })
        }
    }

    /// Creates the first administrator, or promotes an existing account (for
    /// `biomatch admin bootstrap`; no caller to check).
    pub async fn bootstrap_admin(&self, email: &str, password: &str, name: &str) -> Result<User> {
        if let Some(rec) = self.user_record_by_email(email).await? {
            sqlx::query("UPDATE users SET role = 'admin', updated_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(&rec.user.id)
                .execute(&self.db.pool)
                .await?;
            return Ok(self.user_record(&rec.user.id).await?.user);
        }
        self.insert_user(
            NewUser {
                email: email.into(),
                password: password.into(),
                name: name.into(),
                role: None,
            },
            Role::Admin,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_names_are_checked() {
        assert_eq!(normalise_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in ["", "ann", "@x.y", "a@b", "a@.b", "a b@c.d", "a@b.c."] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("  ").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
        assert_eq!(check_name(" Ann ").unwrap(), "Ann");
    }
}
