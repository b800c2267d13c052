//! Authentication of every request: a bearer access JWT (whose session must still be live) or
//! an API key (as `Authorization: Bearer` or `X-API-Key`), checked against the database by one
//! statement on each request, so that logout, deactivation, deletion and role changes take
//! effect on the very next request on every replica. What the user's roles grant comes from
//! the realm's catalog, in memory.

use axum::http::HeaderMap;
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, Header};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::access::db::{keys, sessions};
use crate::audit::Actor;
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::realm::{Realm, RealmId};

/// An authenticated user of some realm.
#[derive(Debug, Clone)]
pub struct Principal {
    pub realm: RealmId,
    pub user_id: Uuid,
    pub username: String,
    /// What this request may do: the user's current permissions, narrowed to the key's scopes
    /// when it came with an API key.
    pub permissions: Vec<String>,
    /// The account must change its password before anything else.
    pub must_change_password: bool,
    /// The session of a JWT; `None` for API keys.
    pub session_id: Option<Uuid>,
    pub session_expires_at: Option<DateTime<Utc>>,
    /// The API key used, if any.
    pub api_key_id: Option<Uuid>,
    pub client: ClientInfo,
}

impl Principal {
    /// This principal as the actor of an audited change.
    pub fn actor(&self) -> Actor {
        Actor {
            id: Some(self.user_id),
            username: Some(self.username.clone()),
            realm: Some(self.realm),
            client: self.client.clone(),
        }
    }

    /// Whether this request may use `permission`.
    pub fn can(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// The credential of a request: `X-API-Key`, else the bearer token (a JWT or an API key).
fn credential(headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| ApiError::InvalidCredentials)?
            .trim();
        if !key.is_empty() {
            return Ok(key.to_owned());
        }
    }
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    if headers.get(axum::http::header::AUTHORIZATION).is_none() {
        return Err(ApiError::NotAuthenticated);
    }
    // Another scheme (Basic), or none: not authenticated, as FastAPI's OAuth2 bearer says.
    let bearer =
        Authorization::<Bearer>::decode(&mut values).map_err(|_| ApiError::NotAuthenticated)?;
    match bearer.token().trim() {
        "" => Err(ApiError::NotAuthenticated),
        token => Ok(token.to_owned()),
    }
}

/// Authenticates the request's credential against `realm`.
pub async fn authenticate(
    realm: &Realm,
    headers: &HeaderMap,
    client: ClientInfo,
) -> Result<Principal, ApiError> {
    let token = credential(headers)?;
    let prefixes = [RealmId::Slm, RealmId::Autobot].map(|r| r.policy().api_key_prefix);
    if prefixes.iter().any(|p| token.starts_with(p)) {
        if !token.starts_with(realm.policy().api_key_prefix) {
            tracing::debug!("API key of another realm");
            return Err(ApiError::InvalidCredentials);
        }
        return authenticate_api_key(realm, &token, client).await;
    }
    let claims = realm.tokens().verify_access(&token).map_err(|err| {
        tracing::debug!(error = %err, realm = realm.name(), "access token rejected");
        ApiError::InvalidCredentials
    })?;
    let idle = realm.tokens().lifetimes.session_idle;
    let found = realm
        .read(|mut db| {
            Box::pin(async move {
                Ok(sessions::of_session(&mut db, claims.sid, claims.uid, idle).await?)
            })
        })
        .await?
        .ok_or_else(|| {
            tracing::debug!(session = %claims.sid, "session ended or user inactive");
            ApiError::InvalidCredentials
        })?;
    Ok(principal(realm, found, Some(claims.sid), client))
}

async fn authenticate_api_key(
    realm: &Realm,
    key: &str,
    client: ClientInfo,
) -> Result<Principal, ApiError> {
    let hashes = realm.tokens().api_key_hashes(key);
    let found = realm
        .read(|mut db| Box::pin(async move { Ok(sessions::of_api_key(&mut db, &hashes).await?) }))
        .await?
        .ok_or_else(|| {
            tracing::debug!("unknown, revoked or expired API key");
            ApiError::InvalidCredentials
        })?;
    // Counting the use is not part of answering: it is written beside the request.
    if let Some(key_id) = found.key_id {
        let (realm, current) = (realm.clone(), realm.tokens().api_key_hash(key));
        tokio::spawn(async move {
            let _ = realm
                .read(|mut db| {
                    Box::pin(async move { Ok(keys::record_use(&mut db, key_id, &current).await?) })
                })
                .await;
        });
    }
    Ok(principal(realm, found, None, client))
}

fn principal(
    realm: &Realm,
    found: sessions::Credential,
    session_id: Option<Uuid>,
    client: ClientInfo,
) -> Principal {
    let catalog = realm.catalog();
    let roles = catalog.roles_of(&found.role_ids, found.is_platform_admin);
    let mut permissions = catalog.permissions_of(&roles);
    // A key's permissions are its owner's current ones, narrowed to its scopes (none: all).
    let scopes: Vec<String> = found
        .key_scopes
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    if !scopes.is_empty() {
        permissions.retain(|p| scopes.contains(p));
    }
    Principal {
        realm: realm.id(),
        user_id: found.user_id,
        username: found.username,
        permissions,
        must_change_password: found.must_change_password,
        session_id,
        session_expires_at: found.session_expires_at,
        api_key_id: found.key_id,
        client,
    }
}
