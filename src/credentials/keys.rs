//! Small cryptographic helpers shared by tokens, API keys and MFA: random secrets, digests of
//! random tokens, and keys derived for one purpose from a configured secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A new opaque secret of 256 random bits, URL-safe.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of an opaque random token (refresh tokens, temp tokens, backup codes): random input
/// needs no slow hash.
pub fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    #[expect(clippy::unwrap_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// A 256-bit key for one purpose, derived from a configured secret with HKDF-SHA256 (RFC 5869),
/// so that one secret never serves two purposes directly.
pub fn derive_key(secret: &str, purpose: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(b"slm-server"), secret.as_bytes())
        .expand(purpose.as_bytes(), &mut key)
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
    key
}

/// The derivation of releases up to 0.2 (SHA-256 over a label and the secret), kept only to
/// recognise what they stored: MFA secrets sealed then, and API keys hashed then (both are
/// moved to [`derive_key`]'s keys as they are next used or resealed).
pub fn legacy_derive_key(secret: &str, purpose: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"slm-server:");
    hasher.update(purpose.as_bytes());
    hasher.update(b":");
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bits_and_fresh() {
        let s = random_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(&s).expect("b64").len(), 32);
        assert_ne!(s, random_secret());
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_from_the_legacy_ones() {
        assert_ne!(derive_key("s", "mfa"), derive_key("s", "api-key"));
        assert_eq!(derive_key("s", "mfa"), derive_key("s", "mfa"));
        assert_ne!(derive_key("s", "mfa"), legacy_derive_key("s", "mfa"));
    }
}
