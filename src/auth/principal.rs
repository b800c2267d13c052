//! Authentication of every request: a bearer access JWT (whose session must still be live) or
//! an API key (as `Authorization: Bearer` or `X-API-Key`), checked against the database on
//! each request, so that logout, deactivation, deletion and role changes take effect on the
//! very next request on every replica.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::Actor;
use crate::auth::client::ClientInfo;
use crate::auth::db::{self, Authenticated};
use crate::error::{ApiError, Denial};
use crate::realm::{Realm, RealmId};
use crate::state::{AppState, Scoped};
use crate::users::db::User;

/// An authenticated user of some realm.
#[derive(Debug, Clone)]
pub struct Principal {
    pub realm: RealmId,
    pub user: User,
    /// What this request may do: the user's current permissions, narrowed to the key's scopes
    /// when it came with an API key.
    pub permissions: Vec<String>,
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
            id: Some(self.user.id),
            username: Some(self.user.username.clone()),
            realm: Some(self.realm),
            client: self.client.clone(),
        }
    }

    /// Whether this request may use `permission`.
    pub fn can(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// A 403 for this principal, recorded as `permission_denied`.
    pub fn denied(&self, detail: &'static str, permission: Option<&'static str>) -> ApiError {
        ApiError::Denied(Box::new(Denial {
            detail,
            realm: self.realm.as_str(),
            actor_id: self.user.id,
            actor_username: self.user.username.clone(),
            permission,
            ip: self.client.ip.map(|ip| ip.to_string()),
            user_agent: self.client.user_agent.clone(),
        }))
    }

    /// Refuses what only a signed-in session may do (managing credentials): an API key must not
    /// be able to mint keys or turn MFA off.
    pub fn require_session(&self) -> Result<(), ApiError> {
        match self.api_key_id {
            None => Ok(()),
            Some(_) => Err(self.denied("This requires a signed-in session, not an API key", None)),
        }
    }
}

/// The credential of a request: a bearer token (JWT or API key) or `X-API-Key`.
fn credential(headers: &HeaderMap) -> Result<&str, ApiError> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| ApiError::InvalidCredentials)?
            .trim();
        if !key.is_empty() {
            return Ok(key);
        }
    }
    let header = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::NotAuthenticated)?
        .to_str()
        .map_err(|_| ApiError::InvalidCredentials)?;
    let (scheme, token) = header.split_once(' ').ok_or(ApiError::NotAuthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::NotAuthenticated);
    }
    Ok(token)
}

fn principal(
    realm: &Realm,
    found: Authenticated,
    session_id: Option<Uuid>,
    client: ClientInfo,
) -> Principal {
    let Authenticated {
        user,
        mut permissions,
        session_expires_at,
        key_id,
        key_scopes,
        ..
    } = found;
    // A key's permissions are its owner's current ones, narrowed to its scopes (none: all).
    if let Some(scopes) = key_scopes.filter(|s| !s.is_empty()) {
        permissions.retain(|p| scopes.contains(p));
    }
    Principal {
        realm: realm.id(),
        user,
        permissions,
        session_id,
        session_expires_at,
        api_key_id: key_id,
        client,
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
        return authenticate_api_key(realm, token, client).await;
    }
    let claims = realm.tokens().verify_access(token).map_err(|err| {
        tracing::debug!(error = %err, realm = realm.name(), "access token rejected");
        ApiError::InvalidCredentials
    })?;
    let mut conn = realm.conn().await?;
    let found = db::session_user(
        &mut conn,
        claims.sid,
        claims.uid,
        realm.tokens().session_idle,
    )
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
    let mut conn = realm.conn().await?;
    let found = db::api_key_user(&mut conn, &hashes).await?.ok_or_else(|| {
        tracing::debug!("unknown, revoked or expired API key");
        ApiError::InvalidCredentials
    })?;
    // Counting the use is not part of answering: it is written beside the request.
    if let Some(key_id) = found.key_id {
        let (realm, current) = (realm.clone(), realm.tokens().api_key_hash(key));
        tokio::spawn(async move {
            if let Ok(mut conn) = realm.conn().await {
                let _ = db::record_api_key_use(&mut conn, key_id, &current).await;
            }
        });
    }
    Ok(principal(realm, found, None, client))
}

fn client_of(parts: &Parts, app: &AppState) -> ClientInfo {
    ClientInfo::from_parts(parts, &app.settings.trusted_proxies)
}

/// Refuses an account that must change its password (the bootstrap admin, approved access
/// requests) everything but `/me`, `/me/password` and `/logout`.
fn ready(principal: Principal) -> Result<Principal, ApiError> {
    if principal.user.must_change_password {
        return Err(principal.denied("Password change required", None));
    }
    Ok(principal)
}

/// Any signed-in user of the router's own realm, even one who must change their password:
/// `/me`, `/me/password`, `/logout`.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Principal);

impl FromRequestParts<Scoped> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Scoped,
    ) -> Result<Self, Self::Rejection> {
        let client = client_of(parts, &state.app);
        authenticate(&state.realm, &parts.headers, client)
            .await
            .map(SignedIn)
    }
}

/// A user of the router's own realm (self-service routes: MFA, API keys).
#[derive(Debug, Clone)]
pub struct RealmUser(pub Principal);

impl FromRequestParts<Scoped> for RealmUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Scoped,
    ) -> Result<Self, Self::Rejection> {
        let client = client_of(parts, &state.app);
        let principal = authenticate(&state.realm, &parts.headers, client).await?;
        ready(principal).map(RealmUser)
    }
}

/// An SLM-realm principal: every management route requires one, whatever realm it manages
/// (docs/api.md §2). An account that must change its password may do nothing else first.
#[derive(Debug, Clone)]
pub struct Operator(pub Principal);

impl<S> FromRequestParts<S> for Operator
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let client = client_of(parts, &app);
        let principal = authenticate(&app.slm, &parts.headers, client).await?;
        ready(principal).map(Operator)
    }
}
