//! Token formats: short-lived JWT access tokens (HS256), opaque refresh
//! tokens and API keys. Opaque secrets are 256 random bits, so a plain
//! SHA-256 is enough to store them: there is nothing to brute-force.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{PlatformError, Result};

/// The issuer claim of every access token.
pub const ISSUER: &str = "biomatch";

/// What an access token says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The login session (refresh-token family); logout revokes it.
    pub sid: String,
    /// Issuer.
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// Keys from a shared secret (at least 32 bytes).
    pub fn new(secret: &[u8]) -> Result<JwtKeys> {
        if secret.len() < 32 {
            return Err(PlatformError::invalid("auth.jwt_secret", "must be at least 32 bytes"));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Ok(JwtKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// A signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.enc)
            .map_err(|e| PlatformError::Internal(format!("cannot sign token: {e}")))
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    PlatformError::unauthenticated("AUTH_TOKEN_EXPIRED", "access token has expired; refresh it")
                }
                _ => PlatformError::unauthenticated("AUTH_TOKEN_INVALID", "access token is not valid"),
            })
    }
}

/// 32 random bytes, URL-safe base64.
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Hex SHA-256, the at-rest form of opaque tokens and keys.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Prefix of every API key, so that leaked keys are easy to scan for.
pub const API_KEY_PREFIX: &str = "bmk_";

/// A new API key `bmk_<id>_<secret>` and its id. The id part lets the server
/// find the row without scanning hashes.
pub fn new_api_key() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let key = format!("{API_KEY_PREFIX}{id}_{}", random_secret());
    (id, key)
}

/// Splits an API key into its id; `None` when it is not in our format.
pub fn api_key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 32 && !secret.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_expiry_and_tamper() {
        let k = JwtKeys::new(&[7u8; 32]).unwrap();
        let now = crate::now_ms() / 1000;
        let c = Claims {
            sub: "u1".into(),
            sid: "s1".into(),
            iss: ISSUER.into(),
            iat: now,
            exp: now + 60,
        };
        let t = k.sign(&c).unwrap();
        assert_eq!(k.verify(&t).unwrap(), c);
        let other = JwtKeys::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&t).unwrap_err().code(), "AUTH_TOKEN_INVALID");
        let old = k.sign(&Claims { exp: now - 1, ..c }).unwrap();
        assert_eq!(k.verify(&old).unwrap_err().code(), "AUTH_TOKEN_EXPIRED");
        assert!(JwtKeys::new(b"short").is_err());
    }

    #[test]
    fn api_keys_carry_their_id() {
        let (id, key) = new_api_key();
        assert_eq!(api_key_id(&key), Some(id.as_str()));
        assert_eq!(api_key_id("bmk_short_x"), None);
        assert_eq!(api_key_id("Bearer abc"), None);
        assert_ne!(sha256_hex(&key), key);
    }
}
