//! Access tokens: HS256 JWTs that the other SLM services verify with python-jose (no audience,
//! `sub` the username), naming their realm and session. Each realm signs with its own newest
//! secret and accepts all of its configured secrets, so a secret can be rotated without
//! signing anybody out.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::credentials::keys::{derive_key, hex, hmac_sha256, legacy_derive_key};

/// Claims of an access token (docs/api.md §4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The username, as the other SLM services read it.
    pub sub: String,
    /// The user id.
    pub uid: Uuid,
    /// The highest role.
    pub role: String,
    pub admin: bool,
    pub realm: String,
    /// The session this token belongs to; the token dies with it.
    pub sid: Uuid,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Who a token is issued to.
pub struct Subject<'a> {
    pub user_id: Uuid,
    pub username: &'a str,
    pub role: &'a str,
    pub admin: bool,
    pub session_id: Uuid,
}

/// Why a token was refused (logged at debug, never sent).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token header")]
    MalformedHeader,
    #[error("the token has a crit header, which this server does not understand")]
    CriticalHeader,
    #[error("no configured key has id {0:?}")]
    UnknownKey(String),
    #[error("the token belongs to realm {0:?}")]
    OtherRealm(String),
    #[error(transparent)]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

struct SigningKey {
    /// Short public id of the secret, carried as `kid` so that verification picks its key.
    id: String,
    /// The id releases up to 0.2 gave the same secret, which their tokens carry.
    legacy_id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    api_key_mac: SecretBox<[u8; 32]>,
    /// The MAC key of releases up to 0.2, which their API keys were stored under (replaced by
    /// the current one at a key's next use).
    legacy_api_key_mac: SecretBox<[u8; 32]>,
}

impl SigningKey {
    fn new(secret: &SecretString) -> Self {
        let secret = secret.expose_secret();
        Self {
            id: hex(&derive_key(secret, "jwt-key-id")[..4]),
            legacy_id: hex(&legacy_derive_key(secret, "jwt-key-id")[..4]),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            api_key_mac: SecretBox::new(Box::new(derive_key(secret, "api-key"))),
            legacy_api_key_mac: SecretBox::new(Box::new(legacy_derive_key(secret, "api-key"))),
        }
    }
}

/// How long tokens and sessions of a realm live.
#[derive(Clone, Copy, Debug)]
pub struct TokenLifetimes {
    /// An access token.
    pub access: Duration,
    /// A refresh token, and its session (extended by each refresh).
    pub refresh: Duration,
    /// A session unused for this long ends (`SESSION_IDLE_MINUTES`).
    pub session_idle: Duration,
}

/// One realm's signing keys and token lifetimes.
#[derive(Clone)]
pub struct TokenKeys {
    realm: &'static str,
    /// Newest first: the first signs, every one verifies.
    keys: std::sync::Arc<Vec<SigningKey>>,
    validation: Validation,
    pub lifetimes: TokenLifetimes,
}

impl TokenKeys {
    /// Keys of `realm` from its secrets, newest first (at least one).
    pub fn new(realm: &'static str, secrets: &[SecretString], lifetimes: TokenLifetimes) -> Self {
        // The algorithm is pinned: a token claiming another `alg` is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self {
            realm,
            keys: std::sync::Arc::new(secrets.iter().map(SigningKey::new).collect()),
            validation,
            lifetimes,
        }
    }

    fn newest(&self) -> &SigningKey {
        // Settings always give at least one secret per realm.
        &self.keys[0]
    }

    /// Signs an access token for `subject`, expiring after the access lifetime or at
    /// `not_after` (the session's own end), whichever comes first.
    pub fn issue_access(
        &self,
        subject: &Subject<'_>,
        not_after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.lifetimes.access.as_secs()).unwrap_or(i64::MAX / 2);
        let exp = not_after.map_or(now + ttl, |end| (now + ttl).min(end.timestamp()));
        let claims = Claims {
            sub: subject.username.to_owned(),
            uid: subject.user_id,
            role: subject.role.to_owned(),
            admin: subject.admin,
            realm: self.realm.to_owned(),
            sid: subject.session_id,
            jti: Uuid::now_v7().to_string(),
            iat: now,
            exp,
        };
        let key = self.newest();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.id.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| anyhow::anyhow!("signing an access token failed: {e}"))
    }

    /// Verifies header, signature, `exp`, `nbf` and realm; the session is checked by the caller.
    pub fn verify_access(&self, token: &str) -> Result<Claims, TokenError> {
        let kid = header_kid(token)?;
        let candidates: Vec<&SigningKey> = match &kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|k| &k.id == kid || &k.legacy_id == kid)
                    .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
                vec![key]
            }
            None => self.keys.iter().collect(),
        };
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation) {
                Ok(data) if data.claims.realm == self.realm => return Ok(data.claims),
                Ok(data) => return Err(TokenError::OtherRealm(data.claims.realm)),
                Err(err) => last = Some(err),
            }
        }
        Err(last.map_or(TokenError::MalformedHeader, TokenError::Jwt))
    }

    /// The stored forms of an API key under every configured secret, newest first: HMAC-SHA256
    /// under a server key. API keys are 256 random bits, so a slow password hash would add
    /// nothing but cost to every API request; the keyed MAC means a stolen table alone cannot be
    /// used to test guesses.
    pub fn api_key_hashes(&self, key: &str) -> Vec<String> {
        self.keys
            .iter()
            .flat_map(|k| [&k.api_key_mac, &k.legacy_api_key_mac])
            .map(|mac| hex(&hmac_sha256(mac.expose_secret(), key.as_bytes())))
            .collect()
    }

    /// The stored form of an API key under the newest secret (hex, as `api_keys.key_hash`).
    pub fn api_key_hash(&self, key: &str) -> String {
        let mac = &self.newest().api_key_mac;
        hex(&hmac_sha256(mac.expose_secret(), key.as_bytes()))
    }
}

/// Reads the JOSE header without trusting it: `crit` names extensions the verifier must
/// understand (RFC 7515 §4.1.11), and this server understands none, so such a token is refused.
fn header_kid(token: &str) -> Result<Option<String>, TokenError> {
    let encoded = token.split('.').next().ok_or(TokenError::MalformedHeader)?;
    let raw = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::MalformedHeader)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).map_err(|_| TokenError::MalformedHeader)?;
    if header.contains_key("crit") {
        return Err(TokenError::CriticalHeader);
    }
    Ok(header
        .get("kid")
        .and_then(|k| k.as_str())
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(realm: &'static str, secrets: &[&str]) -> TokenKeys {
        let secrets: Vec<SecretString> = secrets.iter().map(|s| SecretString::from(*s)).collect();
        let lifetimes = TokenLifetimes {
            access: Duration::from_secs(60),
            refresh: Duration::from_secs(600),
            session_idle: Duration::from_secs(600),
        };
        TokenKeys::new(realm, &secrets, lifetimes)
    }

    fn subject(session_id: Uuid) -> Subject<'static> {
        Subject {
            user_id: Uuid::nil(),
            username: "alice",
            role: "admin",
            admin: true,
            session_id,
        }
    }

    const ONE: &str = "secret-one-secret-one-secret-one";
    const TWO: &str = "secret-two-secret-two-secret-two";

    fn sign(claims: &serde_json::Value, header: Header, secret: &str) -> String {
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign")
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_realm() {
        let slm = keys("slm", &[ONE]);
        let session = Uuid::now_v7();
        let token = slm.issue_access(&subject(session), None).expect("sign");
        let claims = slm.verify_access(&token).expect("verify");
        assert_eq!(
            (claims.sub.as_str(), claims.sid, claims.realm.as_str()),
            ("alice", session, "slm")
        );
        assert!(matches!(
            keys("autobot", &[ONE]).verify_access(&token),
            Err(TokenError::OtherRealm(_))
        ));
        assert!(
            keys("slm", &[TWO]).verify_access(&token).is_err(),
            "other key accepted"
        );
    }

    #[test]
    fn the_newest_secret_signs_and_every_secret_verifies() {
        let old = keys("slm", &[ONE]);
        let rotated = keys("slm", &[TWO, ONE]);
        let before = old
            .issue_access(&subject(Uuid::now_v7()), None)
            .expect("old");
        assert!(
            rotated.verify_access(&before).is_ok(),
            "old token still valid"
        );
        let after = rotated
            .issue_access(&subject(Uuid::now_v7()), None)
            .expect("new");
        assert!(
            keys("slm", &[TWO]).verify_access(&after).is_ok(),
            "signed with the newest"
        );
        assert!(old.verify_access(&after).is_err());
    }

    /// Tokens and API keys made by 0.2, whose key id and API-key MAC were derived the older
    /// way, still verify.
    #[test]
    fn what_0_2_issued_still_verifies() {
        let slm = keys("slm", &[ONE]);
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({"sub": "alice", "uid": Uuid::nil(), "role": "admin",
            "admin": true, "realm": "slm", "sid": Uuid::nil(), "jti": "j", "iat": now, "exp": now + 60});
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(hex(&legacy_derive_key(ONE, "jwt-key-id")[..4]));
        assert!(slm.verify_access(&sign(&claims, header, ONE)).is_ok());
        let stored_by_0_2 = hex(&hmac_sha256(&legacy_derive_key(ONE, "api-key"), b"slmk_x"));
        assert!(slm.api_key_hashes("slmk_x").contains(&stored_by_0_2));
        assert_ne!(
            slm.api_key_hash("slmk_x"),
            stored_by_0_2,
            "stored anew at its next use"
        );
    }

    #[test]
    fn no_audience_and_expiry_capped_by_the_session() {
        let slm = keys("slm", &[ONE]);
        let end = chrono::Utc::now() + chrono::Duration::seconds(10);
        let token = slm
            .issue_access(&subject(Uuid::now_v7()), Some(end))
            .expect("sign");
        let payload = token.split('.').nth(1).expect("payload");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        assert!(claims.get("aud").is_none());
        assert_eq!(claims["exp"], end.timestamp());
    }

    #[test]
    fn a_future_nbf_and_a_crit_header_are_refused() {
        let slm = keys("slm", &[ONE]);
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({"sub": "alice", "uid": Uuid::nil(), "role": "admin",
            "admin": true, "realm": "slm", "sid": Uuid::nil(), "jti": "j", "iat": now, "exp": now + 60});
        let valid = sign(&claims, Header::new(Algorithm::HS256), ONE);
        assert!(slm.verify_access(&valid).is_ok());
        let mut later = claims.clone();
        later["nbf"] = serde_json::json!(now + 600);
        let not_yet = sign(&later, Header::new(Algorithm::HS256), ONE);
        assert!(
            slm.verify_access(&not_yet).is_err(),
            "nbf in the future accepted"
        );
        // A header with crit: encode by hand, jsonwebtoken's Header has no such field.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#);
        let body = valid.split('.').nth(1).expect("payload");
        let signing_input = format!("{header}.{body}");
        let signature =
            URL_SAFE_NO_PAD.encode(hmac_sha256(ONE.as_bytes(), signing_input.as_bytes()));
        let critical = format!("{signing_input}.{signature}");
        assert!(matches!(
            slm.verify_access(&critical),
            Err(TokenError::CriticalHeader)
        ));
        let none_alg = sign(&claims, Header::new(Algorithm::HS384), ONE);
        assert!(
            slm.verify_access(&none_alg).is_err(),
            "other algorithm accepted"
        );
    }
}
