//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s), the QR code of its `otpauth://` URI, and single-use
//! backup codes kept as digests (sealed at rest with [`SealKeys`]).

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::credentials::keys::{hex, sha256};
use crate::credentials::seal::SealKeys;

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

/// An SVG image of a QR code of `text` (an `otpauth://` URI), black on white with its quiet
/// zone, at least 200 pixels wide.
pub fn qr_svg(text: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("drawing the QR code failed: {e}"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

/// How many backup codes a user gets.
pub const BACKUP_CODES: usize = 10;

/// The characters of backup codes: digits and capitals without the look-alikes 0, 1, I and O.
/// 32 symbols, 5 bits each.
const BACKUP_CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Characters of a backup code: 8 × 5 = 40 random bits, and what the dashboard's code field
/// (8 characters) holds.
const BACKUP_CODE_LEN: usize = 8;

/// Ten backup codes of 40 random bits each, such as `K7M2P9QX`.
pub fn backup_codes() -> Vec<String> {
    // rand's thread generator is a CSPRNG, reseeded from the operating system.
    (0..BACKUP_CODES)
        .map(|_| {
            (0..BACKUP_CODE_LEN)
                .map(|_| {
                    let i = rand::random_range(0..BACKUP_CODE_ALPHABET.len());
                    char::from(BACKUP_CODE_ALPHABET[i])
                })
                .collect()
        })
        .collect()
}

/// The stored digest of a backup code as typed: spaces, dashes and case are ignored, so both
/// today's codes and the 19-character `xxxx-xxxx-xxxx-xxxx` codes of earlier releases match.
pub fn backup_code_digest(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    hex(&sha256(&normal))
}

/// Seals the digests of `codes` (a JSON array), as `user_mfa.backup_codes_encrypted` holds them.
pub fn seal_backup_codes(keys: &SealKeys, digests: &[String]) -> anyhow::Result<String> {
    keys.seal(&serde_json::to_string(digests)?)
}

/// Opens sealed backup-code digests.
pub fn open_backup_codes(keys: &SealKeys, sealed: &str) -> anyhow::Result<Vec<String>> {
    Ok(serde_json::from_str(&keys.open(sealed)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SealKeys {
        SealKeys(vec![crate::credentials::seal::SealKey::new(
            &secrecy::SecretString::from("a-test-key"),
        )])
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

    /// A code of the 19-character form earlier releases issued still matches the digest they
    /// stored (SHA-256 of its lower-case letters and digits), however it is typed.
    #[test]
    fn backup_codes_of_earlier_releases_keep_working() {
        let stored = "608594a1bbe19138017e93f01ea1b5ea3e6623eca00641b4fef9d6c3cb8e0223";
        for typed in [
            "k3md-9x2p-aa7q-r2zt",
            "K3MD9X2PAA7QR2ZT",
            " k3md 9x2p aa7q r2zt ",
        ] {
            assert_eq!(backup_code_digest(typed), stored, "{typed}");
        }
    }

    #[test]
    fn backup_codes_are_distinct_and_typed_loosely() {
        let codes = backup_codes();
        assert_eq!(codes.len(), BACKUP_CODES);
        for code in &codes {
            assert_eq!(code.len(), 8, "{code}");
            assert!(
                code.bytes().all(|b| BACKUP_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
        }
        assert_eq!(
            backup_code_digest(&format!(
                " {}-{} ",
                &codes[1][..4],
                &codes[1][4..].to_lowercase()
            )),
            backup_code_digest(&codes[1])
        );
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), BACKUP_CODES);
        assert_eq!(
            backup_code_digest(&codes[0].to_uppercase().replace('-', "")),
            backup_code_digest(&codes[0])
        );
        let k = keys();
        let digests: Vec<String> = codes.iter().map(|c| backup_code_digest(c)).collect();
        let sealed = seal_backup_codes(&k, &digests).expect("seal");
        assert!(
            sealed.len() <= 2000,
            "fits user_mfa.backup_codes_encrypted: {}",
            sealed.len()
        );
        assert_eq!(open_backup_codes(&k, &sealed).expect("open"), digests);
    }
}
