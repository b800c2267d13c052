//! Access JWTs (HS256, audience = realm, naming their session) and the opaque secrets of
//! refresh tokens and API keys.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `iss` of every token this server signs.
pub const ISSUER: &str = "slm-server";

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// The session this token belongs to; the token dies with it.
    pub sid: Uuid,
    pub jti: Uuid,
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

/// One realm's signing keys and lifetimes.
#[derive(Clone)]
pub struct TokenKeys {
    audience: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Key of the HMAC that API keys are stored under.
    api_key_mac_key: [u8; 32],
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenKeys {
    pub fn new(
        audience: &'static str,
        secret: &str,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        // The algorithm is pinned: a token claiming another `alg` is rejected.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            audience,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            api_key_mac_key: crate::config::derive_key(secret, "api-key"),
            access_ttl,
            refresh_ttl,
        }
    }

    /// Signs an access token for `user_id` in session `session_id`.
    pub fn issue_access(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            jti: Uuid::now_v7(),
            aud: self.audience.to_owned(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now + ttl,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| anyhow::anyhow!("signing an access token failed: {e}"))
    }

    /// Verifies signature, algorithm, `exp`, `iss` and `aud`; the session is checked by the caller.
    pub fn verify_access(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims)
    }

    /// The stored form of an API key: HMAC-SHA256 under a server key. API keys are 256 random
    /// bits, so a slow password hash would add nothing but cost to every API request; the keyed
    /// MAC means a stolen table alone cannot be used to test guesses.
    pub fn api_key_hash(&self, key: &str) -> Vec<u8> {
        #[expect(clippy::unwrap_used, reason = "HMAC accepts keys of any length")]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.api_key_mac_key).unwrap();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A new opaque secret of 256 random bits, URL-safe.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of an opaque random token (refresh tokens, recovery codes): random input needs no
/// slow hash.
pub fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(aud: &'static str, secret: &str) -> TokenKeys {
        TokenKeys::new(
            aud,
            secret,
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_realm() {
        let slm = keys("slm", "secret-one-secret-one-secret-one");
        let autobot = keys("autobot", "secret-one-secret-one-secret-one");
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let token = slm.issue_access(user, session).expect("sign");
        let claims = slm.verify_access(&token).expect("verify");
        assert_eq!((claims.sub, claims.sid), (user, session));
        assert!(
            autobot.verify_access(&token).is_err(),
            "other audience accepted"
        );
        let other_secret = keys("slm", "another-secret-another-secret-xx");
        assert!(
            other_secret.verify_access(&token).is_err(),
            "other key accepted"
        );
    }

    #[test]
    fn secrets_are_256_bits() {
        let s = random_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(&s).expect("b64").len(), 32);
        assert_ne!(s, random_secret());
    }
}
