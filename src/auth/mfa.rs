//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s) with secrets encrypted at rest (AES-256-GCM under
//! `MFA_ENCRYPTION_KEY`), and single-use recovery codes stored as hashes.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::auth::token::random_secret;

/// A freshly generated secret in base32, as authenticator apps take it.
pub fn new_secret() -> String {
    Secret::generate().to_base32()
}

/// The TOTP generator of a base32 secret.
pub fn totp(secret_b32: &str, account: &str, issuer: &str) -> anyhow::Result<Totp> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|e| anyhow::anyhow!("stored TOTP secret is not base32: {e:?}"))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(issuer))
        .build()
        .map_err(|e| anyhow::anyhow!("building TOTP failed: {e:?}"))
}

/// The time step a 6-digit `code` is valid for (now ± one step), if any.
pub fn matching_step(totp: &Totp, code: &str) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    totp.check(code, now)
        .and_then(|step| i64::try_from(step).ok())
}

/// Encrypts a secret: 12-byte random nonce followed by the ciphertext.
pub fn encrypt(key: &[u8; 32], plaintext: &str) -> anyhow::Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce_bytes: [u8; 12] = rand::random();
    let mut out = nonce_bytes.to_vec();
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce_bytes), plaintext.as_bytes())
        .map_err(|_| anyhow::anyhow!("encrypting the TOTP secret failed"))?;
    out.extend(ciphertext);
    Ok(out)
}

/// Decrypts what [`encrypt`] produced.
pub fn decrypt(key: &[u8; 32], stored: &[u8]) -> anyhow::Result<String> {
    if stored.len() < 13 {
        anyhow::bail!("stored TOTP secret is truncated");
    }
    let (nonce, ciphertext) = stored.split_at(12);
    let cipher = Aes256Gcm::new(key.into());
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .map_err(|_| {
            anyhow::anyhow!("decrypting the TOTP secret failed (wrong MFA_ENCRYPTION_KEY?)")
        })?;
    Ok(String::from_utf8(plain)?)
}

/// Ten recovery codes of 80 random bits each, formatted `xxxx-xxxx-xxxx-xxxx`.
pub fn recovery_codes() -> Vec<String> {
    (0..10)
        .map(|_| {
            let raw: String = random_secret()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(16)
                .collect::<String>()
                .to_lowercase();
            raw.as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The normal form of a recovery code as typed (case and dashes ignored).
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_through_encryption() {
        let key = [7u8; 32];
        let secret = new_secret();
        let sealed = encrypt(&key, &secret).expect("encrypt");
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert_eq!(decrypt(&key, &sealed).expect("decrypt"), secret);
        assert!(decrypt(&[8u8; 32], &sealed).is_err());
    }

    #[test]
    fn current_code_matches_and_garbage_does_not() {
        let secret = new_secret();
        let t = totp(&secret, "alice", "SLM").expect("totp");
        let code = t.generate_current().to_string();
        assert!(matching_step(&t, &code).is_some());
        assert!(matching_step(&t, "abcdef").is_none());
        assert!(matching_step(&t, "12345").is_none());
    }

    #[test]
    fn recovery_codes_are_distinct() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), 10);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        assert_eq!(normalize_recovery_code(&codes[0].to_uppercase()).len(), 16);
    }
}
