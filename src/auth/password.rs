//! Password hashing: Argon2id (m=19456 KiB, t=2, p=1) on the blocking pool, behind a semaphore
//! with a bounded queue, so that a login flood neither starves the async runtime nor queues
//! without limit (each hash holds 19 MiB).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The stored hash is bcrypt or has other parameters: store a fresh Argon2id hash.
    pub needs_rehash: bool,
}

struct Inner {
    slots: Semaphore,
    /// Callers holding or waiting for a slot.
    in_flight: AtomicUsize,
    limit: usize,
    /// A real hash of a random password, verified when the user does not exist so that an
    /// unknown username costs the same time as a wrong password.
    dummy_hash: String,
}

/// The shared password hasher; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher(Arc<Inner>);

fn argon2() -> Argon2<'static> {
    // OWASP's recommended Argon2id parameters; API.md §6 fixes them for the AutoBot backend.
    #[expect(
        clippy::unwrap_used,
        reason = "constant parameters that are known to be valid"
    )]
    let params = Params::new(19_456, 2, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes synchronously (CLI and tests; the server uses [`PasswordHasher::hash`]).
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

/// Verifies synchronously against an Argon2 PHC string or a bcrypt hash.
pub fn verify_blocking(password: &str, stored: &str) -> Verified {
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        let ok = bcrypt::verify(password, stored).unwrap_or(false);
        return Verified {
            ok,
            needs_rehash: ok,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified {
            ok: false,
            needs_rehash: false,
        };
    };
    let ok = argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    let current = stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$");
    Verified {
        ok,
        needs_rehash: ok && !current,
    }
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` hashes at once, with at most `queue` more waiting.
    pub fn new(concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let random: [u8; 24] = rand::random();
        let dummy_hash = hash_blocking(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            random,
        ))?;
        Ok(Self(Arc::new(Inner {
            slots: Semaphore::new(concurrency.max(1)),
            in_flight: AtomicUsize::new(0),
            limit: concurrency.max(1) + queue,
            dummy_hash,
        })))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = &self.0;
        if inner.in_flight.fetch_add(1, Ordering::SeqCst) >= inner.limit {
            inner.in_flight.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("password_hash_rejected_total").increment(1);
            return Err(ApiError::Unavailable {
                detail: "Server busy, retry shortly",
                retry_after_secs: Some(1),
            });
        }
        let result = async {
            let _permit =
                inner.slots.acquire().await.map_err(|e| {
                    ApiError::Internal(anyhow::anyhow!("hash semaphore closed: {e}"))
                })?;
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || span.in_scope(work))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing task failed: {e}")))
        }
        .await;
        inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Hashes a password into an Argon2id PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.run(move || hash_blocking(&password))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is no user.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verified, ApiError> {
        let password = password.to_owned();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.0.dummy_hash.clone(), false),
        };
        let verified = self.run(move || verify_blocking(&password, &hash)).await?;
        Ok(if real {
            verified
        } else {
            Verified {
                ok: false,
                needs_rehash: false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_phc_with_fixed_parameters() {
        let hash = hash_blocking("correct horse").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify_blocking("correct horse", &hash),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(!verify_blocking("wrong horse", &hash).ok);
        assert!(!verify_blocking("x", "not a hash").ok);
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_an_upgrade() {
        let hash = bcrypt::hash("legacy-pass", 4).expect("bcrypt");
        assert_eq!(
            verify_blocking("legacy-pass", &hash),
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        assert!(!verify_blocking("other", &hash).ok);
    }
}
