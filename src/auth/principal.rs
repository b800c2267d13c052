//! Authentication of every request: a bearer access JWT (whose session must still be live) or
//! an API key, checked against the database on each request, so that logout, deactivation,
//! deletion and role changes take effect on the very next request on every replica.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::audit::Actor;
use crate::auth::client::ClientInfo;
use crate::error::ApiError;
use crate::realm::{Realm, RealmId};
use crate::state::{AppState, Scoped};
use crate::users::db::{User, user_columns};

/// An authenticated user of some realm.
#[derive(Debug, Clone)]
pub struct Principal {
    pub realm: RealmId,
    pub user: User,
    /// The session of a JWT; `None` for API keys.
    pub session_id: Option<Uuid>,
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
            client: self.client.clone(),
        }
    }

    /// Rank of the principal's highest role in its own realm.
    pub fn rank(&self) -> i16 {
        self.realm.policy().max_rank(&self.user.roles)
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
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

#[derive(sqlx::FromRow)]
struct ApiKeyHit {
    #[sqlx(flatten)]
    user: User,
    key_id: Uuid,
    key_last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Authenticates the request's bearer credential against `realm`.
pub async fn authenticate(
    realm: &Realm,
    parts: &Parts,
    client: ClientInfo,
) -> Result<Principal, ApiError> {
    let token = bearer(parts)?;
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
    let mut conn = realm.acquire().await?;
    let user: Option<User> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        r" FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL
             AND s.expires_at > now() AND u.is_active"
    ))
    .bind(claims.sid)
    .bind(claims.sub)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    let user = user.ok_or_else(|| {
        tracing::debug!(session = %claims.sid, "session ended or user inactive");
        ApiError::InvalidCredentials
    })?;
    Ok(Principal {
        realm: realm.id(),
        user,
        session_id: Some(claims.sid),
        api_key_id: None,
        client,
    })
}

async fn authenticate_api_key(
    realm: &Realm,
    key: &str,
    client: ClientInfo,
) -> Result<Principal, ApiError> {
    let hash = realm.tokens().api_key_hash(key);
    let mut conn = realm.acquire().await?;
    let hit: Option<ApiKeyHit> = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        r", k.id AS key_id, k.last_used_at AS key_last_used_at
           FROM api_keys k JOIN users u ON u.id = k.user_id
           WHERE k.key_hash = $1 AND k.revoked_at IS NULL
             AND (k.expires_at IS NULL OR k.expires_at > now()) AND u.is_active"
    ))
    .bind(&hash)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    let hit = hit.ok_or_else(|| {
        tracing::debug!("unknown, revoked or expired API key");
        ApiError::InvalidCredentials
    })?;
    // `last_used_at` is kept to the minute: writing it on every request would turn each API
    // call into a write.
    let stale = hit
        .key_last_used_at
        .is_none_or(|t| chrono::Utc::now() - t > chrono::Duration::seconds(60));
    if stale {
        let db = realm.db().clone();
        let key_id = hit.key_id;
        tokio::spawn(async move {
            let _ = sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
                .bind(key_id)
                .execute(&db)
                .await;
        });
    }
    Ok(Principal {
        realm: realm.id(),
        user: hit.user,
        session_id: None,
        api_key_id: Some(hit.key_id),
        client,
    })
}

fn client_of(parts: &Parts, app: &AppState) -> ClientInfo {
    ClientInfo::from_parts(parts, &app.settings.trusted_proxies)
}

/// A user of the router's own realm (self-service routes: `/me`, `/logout`, …).
#[derive(Debug, Clone)]
pub struct RealmUser(pub Principal);

impl FromRequestParts<Scoped> for RealmUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Scoped,
    ) -> Result<Self, Self::Rejection> {
        let client = client_of(parts, &state.app);
        authenticate(&state.realm, parts, client)
            .await
            .map(RealmUser)
    }
}

/// An SLM-realm principal: every management route requires one, whatever realm it manages
/// (API.md §2). An account that must change its password may do nothing else first.
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
        let principal = authenticate(&app.slm, parts, client).await?;
        if principal.user.must_change_password {
            return Err(ApiError::Forbidden("Password change required"));
        }
        Ok(Operator(principal))
    }
}
