//! Sessions of both realms: opening one at the end of a sign-in, refresh (with reuse
//! detection), logout and the caller's own password change.
//!
//! Hashes are checked and computed before any transaction opens, so that no row lock waits on
//! one.

use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use crate::access::db::sessions::{self, NewSession, SessionRow};
use crate::access::end_credentials;
use crate::access::principal::Principal;
use crate::audit::{self, Actor, AuditAction};
use crate::auth::dto::TokenResponse;
use crate::credentials::keys::{random_secret, sha256};
use crate::credentials::token::Subject;
use crate::domain::Password;
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, FieldError};
use crate::outbox::{self, OutboxEvent};
use crate::realm::Realm;
use crate::state::AppState;
use crate::users::User;
use crate::users::service as users;

/// The one answer to every failed login, so that it tells nothing about the account.
pub const INVALID_LOGIN: ApiError = ApiError::Unauthorized("Invalid username or password");

/// The actor of a user acting in its own realm.
pub fn user_actor(realm: &Realm, id: Uuid, username: &str, client: &ClientInfo) -> Actor {
    Actor {
        id: Some(id),
        username: Some(username.to_owned()),
        realm: Some(realm.id()),
        client: client.clone(),
    }
}

/// A token pair (or an access token alone) for `user` in `session_id`; the access token ends
/// no later than `session_end`.
fn tokens(
    realm: &Realm,
    user: User,
    session_id: Uuid,
    session_end: Option<chrono::DateTime<Utc>>,
    refresh: Option<String>,
) -> Result<TokenResponse, ApiError> {
    let subject = Subject {
        user_id: user.id,
        username: &user.username,
        role: user.highest_role().unwrap_or(realm.policy().default_role),
        admin: user.is_admin(),
        session_id,
    };
    let access = realm.tokens().issue_access(&subject, session_end)?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "bearer",
        expires_in: realm.tokens().lifetimes.access.as_secs(),
        refresh_token: refresh,
        user: user.into(),
    })
}

/// Completes a sign-in whose every factor was checked, in the caller's transaction: stamps the
/// login, opens the session with its first refresh token and audits it as `action`
/// (`login_success`, or `sso_login`).
pub async fn open_session(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    user_id: Uuid,
    action: AuditAction,
    detail: serde_json::Value,
) -> Result<TokenResponse, ApiError> {
    let session_id = Uuid::now_v7();
    let refresh = random_secret();
    let ip = actor.client.ip.map(|ip| ip.to_string());
    users::signed_in(db, user_id).await?;
    let session = NewSession {
        id: session_id,
        user_id,
        expires_at: Utc::now() + realm.tokens().lifetimes.refresh,
        ip: ip.as_deref(),
        user_agent: actor.client.user_agent.as_deref(),
        refresh_token_hash: &sha256(&refresh),
    };
    sessions::insert(db, &session).await.map_err(|e| match &e {
        // The user was deleted since the password check: the session's foreign key refuses.
        sqlx::Error::Database(err) if err.is_foreign_key_violation() => INVALID_LOGIN,
        _ => ApiError::from(e),
    })?;
    audit::record(db, realm, actor, action, Some(user_id), detail).await?;
    let user = users::fetch(db, realm, user_id)
        .await?
        .ok_or(INVALID_LOGIN)?;
    tokens(realm, user, session_id, None, Some(refresh))
}

/// Exchanges a refresh token for a new pair. The old token stops working, except when
/// presented again less than `grace` after its use (browser tabs refreshing together); later,
/// presenting it again means it was stolen or replayed, and ends the whole session.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn refresh(
    realm: &Realm,
    refresh_token: &SecretString,
    grace: Duration,
    client: ClientInfo,
) -> Result<TokenResponse, ApiError> {
    let presented = sha256(refresh_token.expose_secret());
    let lifetimes = realm.tokens().lifetimes;
    let (presented, client) = (&presented, &client);
    let answer = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let successor = random_secret();
                let expires_at = Utc::now() + lifetimes.refresh;
                let rotated = sessions::rotate_refresh_token(
                    &mut tx,
                    presented,
                    &sha256(&successor),
                    expires_at,
                    grace,
                    lifetimes.session_idle,
                )
                .await?;
                let Some(rotated) = rotated else {
                    end_replayed_session(&mut tx, realm, presented, grace, client).await?;
                    // The refusal's records stay: the transaction commits.
                    return Ok(Err(ApiError::InvalidCredentials));
                };
                let user = users::fetch(&mut tx, realm, rotated.user_id)
                    .await?
                    .ok_or(ApiError::InvalidCredentials)?;
                let actor = user_actor(realm, user.id, &user.username, client);
                let detail = json!({"session_id": rotated.session_id});
                let action = AuditAction::TokenRefresh;
                audit::record(&mut tx, realm, &actor, action, Some(user.id), detail).await?;
                Ok(Ok((user, rotated.session_id, successor)))
            })
        })
        .await?;
    let (user, session_id, successor) = answer?;
    tokens(realm, user, session_id, None, Some(successor))
}

/// After a refused refresh: if the token was used before the grace window, it was stolen or
/// replayed, so its whole session ends.
async fn end_replayed_session(
    db: &mut PgConnection,
    realm: &Realm,
    presented: &[u8],
    grace: Duration,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let Some(replayed) = sessions::replayed_session(db, presented, grace).await? else {
        return Ok(());
    };
    sessions::revoke(db, replayed.session_id, "refresh_token_reuse").await?;
    let actor = user_actor(realm, replayed.user_id, &replayed.username, client);
    let detail = json!({"session_id": replayed.session_id});
    let action = AuditAction::TokenReuseDetected;
    audit::record(db, realm, &actor, action, Some(replayed.user_id), detail).await
}

/// A new access token for the caller's live session (the dashboard's refresh, with only its
/// access token): it never outlives the session, and the session is not extended.
pub async fn refresh_access(realm: &Realm, me: &Principal) -> Result<TokenResponse, ApiError> {
    let (Some(session_id), Some(session_end)) = (me.session_id, me.session_expires_at) else {
        // An API key has no session to renew.
        return Err(ApiError::InvalidCredentials);
    };
    let user = realm
        .read(|mut db| {
            Box::pin(async move {
                let detail = json!({"session_id": session_id, "with": "access_token"});
                let action = AuditAction::TokenRefresh;
                audit::record(
                    &mut db,
                    realm,
                    &me.actor(),
                    action,
                    Some(me.user_id),
                    detail,
                )
                .await?;
                users::fetch(&mut db, realm, me.user_id)
                    .await?
                    .ok_or(ApiError::InvalidCredentials)
            })
        })
        .await?;
    tokens(realm, user, session_id, Some(session_end), None)
}

/// Ends the caller's session: its access token and refresh token stop working at once.
pub async fn logout(realm: &Realm, me: &Principal) -> Result<(), ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if let Some(session_id) = me.session_id {
                    sessions::revoke(&mut tx, session_id, "logout").await?;
                }
                let detail = json!({"session_id": me.session_id});
                audit::record(
                    &mut tx,
                    realm,
                    &me.actor(),
                    AuditAction::Logout,
                    Some(me.user_id),
                    detail,
                )
                .await
            })
        })
        .await
}

/// Changes the caller's own password after checking the current one; other sessions end.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %me.user_id))]
pub async fn change_password(
    app: &AppState,
    realm: &Realm,
    me: &Principal,
    current: &SecretString,
    new: &SecretString,
) -> Result<(), ApiError> {
    let user = users::get(realm, me.user_id).await?;
    let new = Password::parse(new, &user.username, Some(&user.email), realm.scheme())
        .map_err(|msg| ApiError::field(FieldError::body("new_password", msg)))?;
    if new.secret().expose_secret() == current.expose_secret() {
        return Err(ApiError::field(FieldError::body(
            "new_password",
            "New password must differ from the current password",
        )));
    }
    if !password_matches(app, realm, me, current).await? {
        return Err(ApiError::BadRequest("Current password is incorrect".into()));
    }
    let hash = app
        .hasher
        .hash(me.client.ip, new.secret(), realm.scheme())
        .await?;
    let hash = hash.as_str();
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                users::set_own_password(&mut tx, me.user_id, hash).await?;
                let actor = me.actor();
                let detail = json!({"by": "self"});
                let action = AuditAction::PasswordChanged;
                audit::record(&mut tx, realm, &actor, action, Some(me.user_id), detail).await?;
                let reason = "password_changed";
                end_credentials(&mut tx, realm, &actor, me.user_id, me.session_id, reason).await?;
                outbox::enqueue(
                    &mut tx,
                    realm,
                    &[me.user_id],
                    OutboxEvent::UserPasswordChanged,
                )
                .await
            })
        })
        .await
}

/// Whether `password` is the caller's (the same cost whether or not it has one).
pub async fn password_matches(
    app: &AppState,
    realm: &Realm,
    me: &Principal,
    password: &SecretString,
) -> Result<bool, ApiError> {
    let stored = users::password_hash(realm, me.user_id).await?;
    let verified = app
        .hasher
        .verify(me.client.ip, password, stored.as_deref(), realm.scheme())
        .await?;
    Ok(verified.ok)
}

/// The caller's own live sessions, newest first.
pub async fn my_sessions(realm: &Realm, me: &Principal) -> Result<Vec<SessionRow>, ApiError> {
    let idle = realm.tokens().lifetimes.session_idle;
    realm
        .read(|mut db| {
            Box::pin(async move { Ok(sessions::live(&mut db, me.user_id, idle, 0, 100).await?.0) })
        })
        .await
}
