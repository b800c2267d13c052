//! Sealing secrets at rest (TOTP secrets, backup-code digests, SSO provider secrets) with
//! AES-256-GCM under a ring of keys: the newest seals, every one opens, so a key can be rotated
//! (`MFA_ENCRYPTION_KEYS`, then `slm-server reseal-mfa`).
//!
//! A sealed value is `v2:<key id>:<base64 of nonce ‖ ciphertext>`. Values sealed by releases up
//! to 0.2 are `v1:…`, under keys derived the older way from the same secrets: they still open,
//! and `reseal-mfa` (or the next write) moves them to `v2`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::credentials::keys::{derive_key, hex, legacy_derive_key};

/// One key of the ring, derived from one configured secret, with its public id.
pub struct SealKey {
    id: String,
    key: SecretBox<[u8; 32]>,
    /// The id and key the same secret gave in `v1`.
    legacy_id: String,
    legacy_key: SecretBox<[u8; 32]>,
}

impl SealKey {
    /// The key of `secret`.
    pub fn new(secret: &SecretString) -> Self {
        let secret = secret.expose_secret();
        Self {
            id: hex(&derive_key(secret, "mfa-key-id")[..4]),
            key: SecretBox::new(Box::new(derive_key(secret, "mfa"))),
            legacy_id: hex(&legacy_derive_key(secret, "mfa-key-id")[..4]),
            legacy_key: SecretBox::new(Box::new(legacy_derive_key(secret, "mfa"))),
        }
    }

    /// The key's public id, stored beside each value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", self.id)
    }
}

/// The keys, newest first (at least one: settings refuse none).
#[derive(Debug)]
pub struct SealKeys(pub Vec<SealKey>);

const VERSION: &str = "v2";
const LEGACY_VERSION: &str = "v1";

impl SealKeys {
    fn newest(&self) -> anyhow::Result<&SealKey> {
        self.0
            .first()
            .ok_or_else(|| anyhow::anyhow!("no MFA encryption key is configured"))
    }

    /// Seals `plaintext` with the newest key.
    pub fn seal(&self, plaintext: &str) -> anyhow::Result<String> {
        let key = self.newest()?;
        let cipher = Aes256Gcm::new(key.key.expose_secret().into());
        let nonce_bytes: [u8; 12] = rand::random();
        let mut out = nonce_bytes.to_vec();
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), plaintext.as_bytes())
            .map_err(|_| anyhow::anyhow!("sealing a secret failed"))?;
        out.extend(ciphertext);
        Ok(format!("{VERSION}:{}:{}", key.id, STANDARD.encode(out)))
    }

    /// Opens what [`Self::seal`] made (or a `v1` value), with the key it names.
    pub fn open(&self, sealed: &str) -> anyhow::Result<String> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(version), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!("a stored secret is not in a sealed format");
        };
        let key = match version {
            VERSION => self.0.iter().find(|k| k.id == id).map(|k| &k.key),
            LEGACY_VERSION => self
                .0
                .iter()
                .find(|k| k.legacy_id == id)
                .map(|k| &k.legacy_key),
            _ => anyhow::bail!("a stored secret is in an unknown format"),
        };
        let key = key.ok_or_else(|| {
            anyhow::anyhow!(
                "a stored secret was sealed with key {id:?}, which is not configured (MFA_ENCRYPTION_KEYS)"
            )
        })?;
        let raw = STANDARD.decode(data)?;
        if raw.len() < 13 {
            anyhow::bail!("a stored secret is truncated");
        }
        let (nonce, ciphertext) = raw.split_at(12);
        let plain = Aes256Gcm::new(key.expose_secret().into())
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| anyhow::anyhow!("a stored secret does not open with key {id:?}"))?;
        Ok(String::from_utf8(plain)?)
    }

    /// Whether `sealed` is sealed with the newest key (else `reseal-mfa` seals it again).
    pub fn is_current(&self, sealed: &str) -> bool {
        self.0
            .first()
            .is_some_and(|k| sealed.starts_with(&format!("{VERSION}:{}:", k.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secrets: &[&str]) -> SealKeys {
        SealKeys(
            secrets
                .iter()
                .map(|s| SealKey::new(&SecretString::from(*s)))
                .collect(),
        )
    }

    /// What 0.2 sealed, as it sealed it: the legacy key, and `v1` with the legacy id.
    fn sealed_by_0_2(secret: &str, plaintext: &str) -> String {
        let key = legacy_derive_key(secret, "mfa");
        let nonce: [u8; 12] = [7; 12];
        let mut out = nonce.to_vec();
        out.extend(
            Aes256Gcm::new((&key).into())
                .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
                .expect("encrypt"),
        );
        let id = hex(&legacy_derive_key(secret, "mfa-key-id")[..4]);
        format!("v1:{id}:{}", STANDARD.encode(out))
    }

    #[test]
    fn secrets_round_trip_and_old_keys_still_open() {
        let old = keys(&["first-secret"]);
        let sealed = old.seal("JBSWY3DPEHPK3PXP").expect("seal");
        assert!(sealed.starts_with("v2:"), "{sealed}");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(old.open(&sealed).expect("open"), "JBSWY3DPEHPK3PXP");
        // After a rotation the newest seals and the old one still opens.
        let rotated = keys(&["second-secret", "first-secret"]);
        assert_eq!(
            rotated.open(&sealed).expect("old opens"),
            "JBSWY3DPEHPK3PXP"
        );
        assert!(!rotated.is_current(&sealed));
        assert!(rotated.is_current(&rotated.seal("x").expect("seal")));
        // A key that is gone names itself in the error.
        let err = keys(&["third-secret"]).open(&sealed).expect_err("gone");
        assert!(err.to_string().contains(old.0[0].id()), "{err}");
    }

    #[test]
    fn what_0_2_sealed_still_opens_and_is_not_current() {
        let legacy = sealed_by_0_2("first-secret", "JBSWY3DPEHPK3PXP");
        let ring = keys(&["first-secret"]);
        assert_eq!(ring.open(&legacy).expect("v1 opens"), "JBSWY3DPEHPK3PXP");
        assert!(!ring.is_current(&legacy), "reseal-mfa moves it to v2");
    }
}
