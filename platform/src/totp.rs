//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30 s steps, 6
//! digits), the variant every authenticator app speaks.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

/// Seconds per code.
pub const STEP_SECS: u64 = 30;

/// A new random 160-bit secret, base32 without padding (as authenticator
/// apps expect it).
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::rng().fill_bytes(&mut b);
    data_encoding::BASE32_NOPAD.encode(&b)
}

/// The 6-digit code for `secret` at Unix time `unix_secs`; `None` when the
/// secret is not valid base32.
pub fn code_at(secret: &str, unix_secs: u64) -> Option<String> {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.trim_end_matches('=').as_bytes())
        .ok()?;
    Some(hotp(&key, unix_secs / STEP_SECS, 6))
}

fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:0width$}", bin % 10u32.pow(digits), width = digits as usize)
}

/// True when `code` is the code of the current step or one step either side
/// (clock skew between phone and server).
pub fn check(secret: &str, code: &str, unix_secs: u64) -> bool {
    let code = code.trim();
    [unix_secs.saturating_sub(STEP_SECS), unix_secs, unix_secs + STEP_SECS]
        .iter()
        .any(|&t| code_at(secret, t).is_some_and(|c| constant_time_eq(c.as_bytes(), code.as_bytes())))
}

/// The `otpauth://` URI that authenticator apps import (usually as a QR code).
pub fn provisioning_uri(secret: &str, account: &str, issuer: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits=6&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// Compares without an early exit, so timing does not reveal a prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, key "12345678901234567890", last 6 digits.
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (t, want) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(&secret, t).unwrap(), want, "t = {t}");
        }
        assert!(
            check(&secret, "081804", 1_111_111_109 + 30),
            "one step of skew is accepted"
        );
        assert!(!check(&secret, "081804", 1_111_111_109 + 90));
        assert!(code_at("not base32!", 0).is_none());
        assert!(provisioning_uri(&secret, "a@b.c", "biomatch").starts_with("otpauth://totp/biomatch:a@b.c?secret="));
    }
}
