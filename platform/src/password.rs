//! Password hashing with argon2id (the crate's defaults follow OWASP's
//! minimum: 19 MiB, 2 passes, 1 lane). Hashing is deliberately slow, so
//! callers run it on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

use crate::error::{PlatformError, Result};

/// Shortest and longest passwords accepted.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 10..=128;

/// Checks a new password's length.
pub fn check_policy(password: &str) -> Result<()> {
    let n = password.chars().count();
    if PASSWORD_LEN.contains(&n) {
        Ok(())
    } else {
        Err(PlatformError::invalid(
            "password",
            format!(
                "must be {} to {} characters long",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        ))
    }
}

/// A PHC-format argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PlatformError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PlatformError::Internal(format!("password hashing failed: {e}")))
}

/// True when `password` matches the stored PHC hash.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Runs [`hash`] on the blocking pool.
pub async fn hash_async(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| PlatformError::Internal(e.to_string()))?
}

/// Runs [`verify`] on the blocking pool.
pub async fn verify_async(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterz", &a));
        assert!(!verify("x", "not a phc string"));
        assert!(check_policy("short").is_err());
        assert!(check_policy("long enough!").is_ok());
    }
}
